"""The postern.toml the Python tests give the app: one ETRN queue server on 127.0.0.1 without
TLS, the listener on a free port, a Maildir, dequeue only on link-up; optionally a neighbour's
domain this office is the backup MX for."""


def write_config(path, queue_port, maildir, backup_for=None):
    with open(path, "w") as f:
        f.write(f"""domains = ["office.test"]
[[queue_servers]]
host = "127.0.0.1"
port = {queue_port}
protocol = "etrn"
tls = "off"
[inbound]
listen = ["127.0.0.1:0"]
deliver = "maildir:{maildir}"
[link]
refetch_every = "0"
""")
        if backup_for:
            f.write(f"""[[backup_for]]
domain = "{backup_for}"
deliver_to = "smtp://127.0.0.1:9"
release = ["etrn"]
""")
