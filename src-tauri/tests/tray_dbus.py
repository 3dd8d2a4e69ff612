#!/usr/bin/python3
"""The tray, end to end over D-Bus: this script owns org.kde.StatusNotifierWatcher on a private
session bus, starts the real `postern` with a config whose queuing server is a scripted ETRN
server here, reads the tray menu with dbusmenu GetLayout, checks every label, clicks
"Fetch mail now" and waits for the second ETRN (the first comes at start).

Run inside a private bus and display (Debian's python3 has python3-dbus and python3-gi):
  dbus-run-session -- xvfb-run -a /usr/bin/python3 src-tauri/tests/tray_dbus.py target/debug/postern
Exit 0 = pass. Needs no network beyond 127.0.0.1.
"""
import os
import socket
import json
import subprocess
import sys
import tempfile
import threading
import time

import dbus
import dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

from postern_config import write_config
from sni_watcher import Watcher, click, menu_entries  # the same watcher the native test runs as a process

TIMEOUT = 60  # seconds for the whole test


class EtrnServer:
    """Accepts SMTP sessions and answers ETRN with 250; records every ETRN line."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.etrns = []
        self.stop = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    def session(self, conn):
        conn.settimeout(10)
        f = conn.makefile("rwb")
        f.write(b"220 isp.test ESMTP scripted\r\n"); f.flush()
        for raw in f:
            line = raw.decode().strip()
            verb = line.split(" ")[0].upper()
            if verb == "EHLO":
                f.write(b"250-isp.test\r\n250 ETRN\r\n")
            elif verb == "ETRN":
                self.etrns.append(line)
                f.write(b"250 Queuing started\r\n")
            elif verb == "QUIT":
                f.write(b"221 bye\r\n"); f.flush()
                break
            else:
                f.write(b"502 not here\r\n")
            f.flush()
        conn.close()


def wait_until(loop_ctx, predicate, what):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        loop_ctx.iteration(False)
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def main():
    binary = os.path.abspath(sys.argv[1])
    DBusGMainLoop(set_as_default=True)
    bus = dbus.SessionBus()
    watcher_name = dbus.service.BusName("org.kde.StatusNotifierWatcher", bus)
    watcher = Watcher(bus)
    server = EtrnServer()
    work = tempfile.TemporaryDirectory(prefix="postern-tray-")
    config = os.path.join(work.name, "postern.toml")
    write_config(config, server.port, f"{work.name}/Maildir", backup_for="neighbour.test")
    env = dict(os.environ, POSTERN_CONFIG=config, POSTERN_NOTIFICATIONS="off")
    log = open(os.path.join(work.name, "app.log"), "w")
    app = subprocess.Popen([binary], env=env, stdout=log, stderr=subprocess.STDOUT)
    ctx = GLib.MainContext.default()
    try:
        wait_until(ctx, lambda: watcher.items, "the tray item to register")
        name, path = watcher.items[0]
        wait_until(ctx, lambda: len(server.etrns) >= 1, "the ETRN at start")

        def status_is_online():
            _, items = menu_entries(bus, name, path)
            # After a 250 the engine waits for the server to connect back (this one never does).
            return items[0][1].startswith(("Online · last fetch", "Waiting for the released mail… · last fetch"))

        try:
            wait_until(ctx, status_is_online, "the status line to show the fetch")
        except AssertionError:
            print("status line:", menu_entries(bus, name, path)[1][0][1], "ETRNs:", server.etrns)
            raise
        _, items = menu_entries(bus, name, path)
        labels = [(label, enabled) for _, label, enabled in items]
        expected = [
            (items[0][1], False),
            # The backed-up domain's line, from the engine's backup MX (nothing held yet).
            ("neighbour.test: nothing held, never fetched", False),
            ("Open Postern", True),
            ("Fetch mail now", True),
            ("Pause automatic fetching", True),
            ("Check MX records…", True),
            ("Settings…", True),
            ("Activity…", True),
            ("---", False),
            ("Quit", True),
        ]
        assert [l for l, _ in labels] == [l for l, _ in expected], labels
        assert [e for l, e in labels if l != "---"] == [e for l, e in expected if l != "---"], labels
        print("tray menu:", [l for l, _ in labels])

        click(bus, name, path, "Fetch mail now")
        wait_until(ctx, lambda: len(server.etrns) >= 2, "the ETRN after 'Fetch mail now'")
        assert server.etrns == ["ETRN office.test", "ETRN office.test"], server.etrns
        print("clicked 'Fetch mail now': the queuing server got", server.etrns[-1])

        # The command line reaches the app's engine over the control endpoint.
        posternd = os.path.join(os.path.dirname(binary), "posternd")
        status = subprocess.run(
            [posternd, "status", "--json", "--config", config],
            capture_output=True, text=True, timeout=30,
        )
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["servers"][0]["server"].endswith(f":{server.port}"), status.stdout
        # The tray's endpoint fills in the backup MX too (the window process's dashboard reads it).
        assert json.loads(status.stdout)["backup"][0]["domain"] == "neighbour.test", status.stdout
        print("posternd status reached the app's engine")

        click(bus, name, path, "Quit")
        app.wait(timeout=20)
        assert app.returncode == 0, app.returncode
        print("PASS")
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
        server.stop = True
        log.close()
        with open(os.path.join(work.name, "app.log")) as f:
            sys.stderr.write(f.read()[-3000:] if os.environ.get("VERBOSE") else "")
        work.cleanup()


if __name__ == "__main__":
    main()
