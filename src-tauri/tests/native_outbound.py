#!/usr/bin/python3
"""The outbound half of the real app (issue 15), for native_e2e.py: the wizard's "Sending
mail" step, the Queue window and the "stuck while online" notification, against a private
Postfix smarthost (`postfix-queue --smarthost`: STARTTLS with a test CA's certificate for
127.0.0.1, example.net relayed to an smtp-sink, late@example.net deferred with 450).

- `seed_stuck_message` writes, before the engine first starts, one committed spool message
  whose arrival is two hours old, in the spool's own format (ID.msg, then ID.rec, JSON; see
  src-tauri/engine/src/outbound/spool.rs). The engine recovers it, tries it once the link is
  up, the smarthost defers it, and since it has waited over an hour though tried online, the
  tray shows the "stuck" notification: the one-hour threshold without waiting an hour.
- `sending_step` drives step 7: the live test fails clearly against a closed port, then
  passes against the smarthost (the app trusts its CA through SSL_CERT_FILE, as a system CA).
- `check_config` reads the saved [outbound] section.
- `check_queue` submits real mail over STARTTLS, then checks the Queue window against
  `posternd queue list --json`: the rows and their states, Retry (one more real attempt) and
  Drop (gone from the spool folder, not only from the window).
"""
import email.utils
import json
import os
import smtplib
import subprocess
import time
import tomllib

from webdriver import free_port, wait_until

LATE = "late@example.net"  # the smarthost answers 450 4.2.0
GOOD = "good@example.net"  # relayed to the smarthost's smtp-sink
STUCK = "Outgoing mail to late@example.net has waited 2 h although the link is up: 450 4.2.0"


def write_private(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def seed_stuck_message(spool):
    """One message to LATE that arrived two hours ago and was never tried; its id."""
    os.makedirs(spool, mode=0o700, exist_ok=True)
    arrived = int(time.time()) - 2 * 3600
    msg_id = f"{arrived:x}00000-seed0"
    message = (
        "From: boss@office.test\r\nTo: late@example.net\r\nSubject: written two hours ago\r\n"
        f"Date: {email.utils.formatdate(arrived)}\r\nMessage-ID: <{msg_id}@office.test>\r\n\r\n"
        "Queued while the smarthost kept saying later.\r\n"
    ).encode()
    record = {
        "id": msg_id, "sender": "boss@office.test",
        "recipients": [{"address": LATE, "state": "queued"}],
        "arrived": arrived, "size": len(message), "attempts": 0,
    }
    write_private(os.path.join(spool, f"{msg_id}.msg"), message)
    # The record last: its appearance is the commit marker.
    write_private(os.path.join(spool, f"{msg_id}.rec"), json.dumps(record).encode())
    return msg_id


def sending_step(wd, smarthost, submit_port):
    """Step 7 with a live test against a closed port, then the real smarthost."""
    wd.click(xpath="//label[contains(., 'Also send the office')]/input")
    wd.type("#sm-host", smarthost.host)
    wd.select("#sm-tls", "starttls")
    report = "[data-testid=smarthost-report]"
    wd.type("#sm-port", str(free_port()))
    wd.button("Test the server")
    wd.wait_text(report, "Cannot talk SMTP to the smarthost")
    assert wd.exists(f"{report} li.error"), wd.text(report)
    wd.screenshot("7-sending-closed-port")
    wd.type("#sm-port", str(smarthost.port))
    wd.button("Test the server")
    wd.wait_text(report, f"STARTTLS works and the certificate is valid for {smarthost.host}")
    assert not wd.exists(f"{report} li.error"), wd.text(report)
    print("wizard: the smarthost test fails on a closed port and passes on the real one:", wd.text(report).replace("\n", " | "), flush=True)
    wd.type("#sm-allow", "127.0.0.1/32")
    wd.type("#sm-listen-port", str(submit_port))
    wd.screenshot("7-sending")


def check_config(path, submit, smarthost):
    with open(path, "rb") as f:
        outbound = tomllib.load(f)["outbound"]
    assert outbound["listen"] == [submit], outbound
    assert outbound["allow"] == ["127.0.0.1/32"], outbound
    assert outbound["smarthost"] == f"smtp://{smarthost.host}:{smarthost.port}", outbound
    assert outbound.get("smarthost_tls", "required") == "required", outbound
    assert "smarthost_username" not in outbound, outbound
    print("config: [outbound]", outbound, flush=True)


def submit(port):
    """One message to GOOD and LATE over STARTTLS, as a mail program sends it."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="pc.office.test", timeout=60) as s:
        s.starttls()  # Postern's generated certificate: a mail program on the LAN would ask once
        s.ehlo("pc.office.test")
        s.sendmail("boss@office.test", [GOOD, LATE],
                   "From: boss@office.test\r\nSubject: minutes of the meeting\r\n\r\nAttached.\r\n")


def queue_list(posternd, env):
    out = subprocess.run([posternd, "queue", "list", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return {e["id"]: e for e in json.loads(out.stdout)}


def rows(wd):
    script = "return [...document.querySelectorAll('[data-testid=queue] tbody tr[data-id]')].map((r) => [r.dataset.id, r.innerText])"
    return dict(wd.s("POST", "/execute/sync", {"script": script, "args": []}))


def attempts_cell(wd, msg_id):
    script = "const r = document.querySelector(`tr[data-id='${arguments[0]}']`); return r ? r.cells[4].innerText.trim() : null"
    return wd.s("POST", "/execute/sync", {"script": script, "args": [msg_id]})


def row_button(wd, msg_id, label):
    print("queue: click", label, "on", msg_id, flush=True)
    wd.click(xpath=f"//tr[@data-id='{msg_id}']//button[starts-with(normalize-space(), '{label}')]")


def check_queue(wd, tray, smarthost, posternd, env, spool, stuck_id, submit_port, open_window):
    """Real mail queued, the Queue window, Retry and Drop; `open_window(label)` opens the
    tray entry `label` and switches to its new window."""
    notes = wait_until(lambda: [n["body"] for n in tray.notifications if "although the link is up" in n["body"]], "the 'stuck' notification")
    assert len(notes) == 1 and notes[0].startswith(STUCK), notes
    print("notification:", notes[0], flush=True)
    submit(submit_port)
    wait_until(lambda: smarthost.command("sink-count") == "1", f"{GOOD}'s copy at the smarthost's sink")
    queued = wait_until(lambda: (lambda q: q if len(q) == 2 and all(e["attempts"] >= 1 for e in q.values()) else None)(queue_list(posternd, env)),
                        "two messages in the queue, each tried once")
    [new_id] = [i for i in queued if i != stuck_id]
    states = {r["address"]: r["state"] for r in queued[new_id]["recipients"]}
    assert states == {GOOD: "delivered", LATE: "queued"}, queued[new_id]
    assert all(e["last_reply"].startswith("450 4.2.0") for e in queued.values()), queued
    label = wait_until(lambda: next((l for l in tray.labels() if l == "Outgoing queue (2)…"), None), "the tray to count 2 outgoing messages")
    assert "2 outgoing queued" in tray.labels()[0], tray.labels()

    open_window(label)
    wait_until(lambda: set(rows(wd)) == {stuck_id, new_id}, "the Queue window to list both messages")
    shown = rows(wd)
    assert f"{GOOD} (delivered)" in shown[new_id] and f"{LATE} (queued)" in shown[new_id], shown
    assert f"{LATE} (queued)" in shown[stuck_id] and "2 h" in shown[stuck_id], shown
    assert all("450 4.2.0" in text for text in shown.values()), shown
    wd.screenshot("13-queue", "Outgoing mail queue")

    before = queued[new_id]["attempts"]
    row_button(wd, new_id, "Retry")
    wd.wait_text("[data-testid=queue-notice]", f"{new_id} will be attempted now")
    wait_until(lambda: queue_list(posternd, env)[new_id]["attempts"] == before + 1, "Retry to make one more real attempt")
    wait_until(lambda: attempts_cell(wd, new_id) == str(before + 1), "the window to show the new attempt")
    print(f"queue: Retry made attempt {before + 1} of {new_id}", flush=True)

    row_button(wd, stuck_id, "Drop")
    row_button(wd, stuck_id, "Really drop?")
    wd.wait_text("[data-testid=queue-notice]", f"{stuck_id} dropped (no DSN sent)")
    wait_until(lambda: set(rows(wd)) == {new_id}, "the dropped message to leave the window")
    assert set(queue_list(posternd, env)) == {new_id}
    left = sorted(os.listdir(spool))
    assert not [n for n in left if n.startswith(stuck_id)], left
    wait_until(lambda: "Outgoing queue (1)…" in tray.labels(), "the tray to count 1 outgoing message")
    wd.screenshot("14-queue-dropped", "Outgoing mail queue")
    print(f"queue: Drop removed {stuck_id} from the spool ({left} left)", flush=True)
