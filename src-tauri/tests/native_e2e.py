#!/usr/bin/python3
"""Native end to end: the real tray `postern` and its window process `postern-window` in real
WebKit windows, against a private Postfix queuing server holding mail and a private Postfix
smarthost (native_outbound.py has the outbound parts).

1. A private Postfix (with a dnsmasq that serves the domain's MX records) holds 3 messages for
   office.test; a second one is the ISP's smarthost (STARTTLS; it defers late@example.net); the
   spool holds one message that arrived two hours ago; a StatusNotifierWatcher owned by this
   test runs on the private session bus.
2. The app starts with a fresh config folder: the setup wizard opens. The test completes it
   through the UI (WebKitWebDriver): domain, MX records, queuing server (probed: ETRN), Maildir,
   listening address and port, sending mail (the live test fails on a closed port, passes on
   the smarthost), summary, "Save and start"; the [outbound] keys are read back. The engine sends ETRN; Postfix
   delivers; the 3 messages land in the Maildir chosen in the wizard. The wizard's "Fetch now"
   releases 2 more.
3. The tray over D-Bus: the menu's labels are checked, "Fetch mail now" is clicked, and 2 more
   messages queued at Postfix arrive. The desktop notifications (caught by the test's own
   notification server) say "N new messages released by ..." once: the later releases fall
   within the rate limit. "Open Postern" (the dashboard), "Settings…", "Check MX records…" and
   "Activity…" open their windows (all in one window process), which are checked and
   photographed: the dashboard's counts and Activity's journal rows match the Maildir.
   The two-hour-old message, deferred once the link is up, brings the "stuck" notification;
   mail submitted over STARTTLS reaches the smarthost's sink for one recipient and waits for
   the other; "Outgoing queue (2)…" opens the Queue window, whose Retry makes one more real
   attempt and whose Drop takes the old message out of the spool folder.
4. Closing every window ends the window process; the tray and its engine keep running
   (`posternd status` answers, the tray says Online). "Settings…" starts a new window process;
   "Quit" ends the tray and, with it, the window process.
Every message lands exactly once. Screenshots go to tests/artifacts/desktop/native-*.png.

  dbus-run-session -- xvfb-run -a -s "-screen 0 1280x900x24" \\
    /usr/bin/python3 src-tauri/tests/native_e2e.py target/debug/postern target/debug/postfix-queue
The window app must be built with the UI inside (`--features postern-window/custom-protocol`). Root (Postfix).
Needs Debian's webkit2gtk-driver (WebKitWebDriver), python3-dbus, imagemagick (`import`);
only 127.0.0.1 is used.

WebKitWebDriver is driven directly with the capabilities tauri-driver would build for it
(`webkitgtk:browserOptions`): tauri-driver's proxy dropped requests here now and then
("hyper::Error(IncompleteMessage)", connection reset), which made the test flaky.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import threading

import dbus

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from sni_watcher import click, menu_entries  # noqa: E402
from webdriver import WebDriver, descendants, free_port, stop, wait_until  # noqa: E402
import native_outbound as outbound  # noqa: E402


class QueuingServer:
    """The harness's `postfix-queue` process: a private Postfix (plus dnsmasq, or as the
    smarthost an smtp-sink), driven over stdin; `args` are its command line's."""

    def __init__(self, binary, args, log):
        self.proc = subprocess.Popen(
            [binary, *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
        )
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"postfix-queue did not start (exit {self.proc.wait()}); see its log")
        self.hello = json.loads(line)
        self.host, port = self.hello["listen"].rsplit(":", 1)
        self.port = int(port)
        self.dns = self.hello["dns"]

    def command(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().strip()
        if not reply.startswith("ok "):
            raise AssertionError(f"postfix-queue {line!r}: {reply or 'no answer'}")
        return reply[3:]

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()  # end of stdin: it stops Postfix and removes its directory
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                stop(self.proc)



class Tray:
    """Our StatusNotifierWatcher and notification server (a process), and the app's menu, read
    and clicked over D-Bus."""

    def __init__(self):
        self.proc = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "sni_watcher.py")], stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise AssertionError("the StatusNotifierWatcher did not start")
        self.items = []
        self.notifications = []
        threading.Thread(target=self._read, daemon=True).start()
        self.bus = dbus.SessionBus()

    def _read(self):
        for line in self.proc.stdout:
            words = line.split()
            if len(words) == 3 and words[0] == "registered":
                self.items.append((words[1], words[2]))
            elif line.startswith("notify "):
                self.notifications.append(json.loads(line[len("notify "):]))

    def item(self):
        return wait_until(lambda: self.items and self.items[-1], "the tray item to register")

    def labels(self):
        return [label for _, label, _ in menu_entries(self.bus, *self.item())[1]]

    def click(self, label):
        print("tray: click", label, flush=True)
        click(self.bus, *self.item(), label)

    def close(self):
        stop(self.proc)


def maildir_messages(maildir):
    new = os.path.join(maildir, "new")
    if not os.path.isdir(new):
        return []
    out = []
    for name in sorted(os.listdir(new)):
        with open(os.path.join(new, name), encoding="utf-8", errors="replace") as f:
            out.append(f.read())
    return out


def subject_numbers(messages):
    return sorted(int(m.group(1)) for m in (re.search(r"^Subject: test message (\d+)$", msg, re.M) for msg in messages) if m)


def wait_for_messages(maildir, n, what):
    wait_until(lambda: len(maildir_messages(maildir)) >= n, f"{what} ({n} messages in {maildir}/new)")
    messages = maildir_messages(maildir)
    # Exactly once each: numbered 0..n-1 by postfix-queue, no duplicates, nothing extra.
    assert subject_numbers(messages) == list(range(n)), subject_numbers(messages)
    print(f"{n} messages in the Maildir", flush=True)


def switch_to_new_window(wd, known, what):
    handle = wait_until(lambda: next((h for h in wd.handles() if h not in known), None), f"the {what} window")
    wd.switch_to(handle)
    return handle


def exe(pid):
    """The program a process runs, or None once it is gone (short-lived helpers, such as a
    second postern-window handing its page to the first, come and go while we look)."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def running(pid):
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def check_dashboard(wd, maildir, queue, outgoing):
    """The dashboard's numbers against the Maildir: every message arrived today (the test
    takes minutes), so today, the last 7 days and the 30-day chart count them all."""
    n = len(maildir_messages(maildir))
    tile = lambda name: wd.text(f"[data-testid={name}] strong").strip()
    wait_until(lambda: tile("received-today") == str(n), f"the dashboard to count {n} received today (it says {tile('received-today')})")
    assert tile("received-week") == str(n), tile("received-week")
    assert tile("link") == "Online", tile("link")
    assert tile("outbound-queue") == str(outgoing), tile("outbound-queue")
    wd.wait_text("[data-testid=total-days]", f"{n} received, 0 sent in 30 days")
    wd.wait_text("[data-testid=total-hours]", f"{n} received")
    servers = wd.text("[data-testid=servers]")
    assert f"{queue.host}:{queue.port}" in servers and "250 office.test" in servers, servers
    assert wd.exists("[data-testid=chart-days] canvas"), "the per-day chart was not drawn"
    if outgoing:
        # The queued message is the seeded one, two hours old and deferred by the smarthost:
        # stuck while online, so it needs attention, with its fix.
        wd.wait_text("[data-testid=attention]", "still undelivered after")
        assert "open the Queue window" in wd.text("[data-testid=attention]"), wd.text("[data-testid=attention]")
    else:
        assert "Nothing needs your attention." in wd.text("[data-testid=attention]"), wd.text("[data-testid=attention]")
    print(f"dashboard: {n} received today and this week, as in the Maildir", flush=True)


def check_activity(wd, maildir):
    """Activity reads the journal: one "received" row per message in the Maildir, and the
    search finds one sender's."""
    n = len(maildir_messages(maildir))
    received = "return [...document.querySelectorAll('[data-testid=activity] tbody tr[data-kind=message]')].filter((r) => r.innerText.includes('received from')).length"
    wait_until(lambda: wd.s("POST", "/execute/sync", {"script": received, "args": []}) == n, f"Activity to list {n} received messages")
    wd.select("#filter", "message")
    wd.type("#search", "sender-6@example.net")
    rows = "return [...document.querySelectorAll('[data-testid=activity] tbody tr')].map((r) => r.innerText)"
    wait_until(lambda: (lambda r: len(r) == 1 and "sender-6@example.net" in r[0])(wd.s("POST", "/execute/sync", {"script": rows, "args": []})), "the search to find sender-6's message alone")
    wd.clear_input("#search")
    wd.select("#filter", "all")
    wait_until(lambda: wd.s("POST", "/execute/sync", {"script": received, "args": []}) == n, "Activity to list everything again")
    print(f"activity: {n} received messages in the journal, as in the Maildir; the search finds one", flush=True)


def main():
    app = os.path.abspath(sys.argv[1])
    window_app = os.path.join(os.path.dirname(app), "postern-window")
    postfix_queue = os.path.abspath(sys.argv[2])
    work = tempfile.mkdtemp(prefix="postern-native-")
    logs = {name: open(os.path.join(work, f"{name}.log"), "w") for name in ("postfix-queue", "smarthost", "webdriver")}
    listen_port, submit_port = free_port(), free_port()
    maildir = os.path.join(work, "Office Mail")  # a space, as a real folder name may have
    queue = smarthost = tray = wd = None
    ok = False
    try:
        queue = QueuingServer(postfix_queue, ["--deliver-to", f"127.0.0.1:{listen_port}", "--dns"], logs["postfix-queue"])
        queue.command("queue 3")
        smarthost = QueuingServer(postfix_queue, ["--smarthost", "--defer", outbound.LATE], logs["smarthost"])
        tray = Tray()
        env = dict(
            os.environ,
            POSTERN_CONFIG=os.path.join(work, "config", "postern.toml"),
            POSTERN_NAMESERVERS=queue.dns,
            TAURI_WEBVIEW_AUTOMATION="true",
            # The smarthost's test CA as the system's (rustls-native-certs reads it).
            SSL_CERT_FILE=smarthost.hello["ca"],
            # Autostart entries (written under $HOME/.config), WebKit caches: inside the test's
            # folder, not the user's.
            HOME=os.path.join(work, "home"),
            XDG_CONFIG_HOME=os.path.join(work, "xdg-config"),
            XDG_DATA_HOME=os.path.join(work, "xdg-data"),
            XDG_CACHE_HOME=os.path.join(work, "xdg-cache"),
            XDG_STATE_HOME=os.path.join(work, "xdg-state"),
        )
        os.makedirs(os.path.join(env["HOME"], ".config"))  # the autostart plugin needs it to exist
        for d in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
            os.makedirs(env[d])
        # The wizard's config keeps the default state folder; its spool is "outbound" there.
        spool = os.path.join(env["XDG_STATE_HOME"], "org.postern.Postern", "outbound")
        stuck_id = outbound.seed_stuck_message(spool)
        wd = WebDriver(app, env, logs["webdriver"])
        wizard = wd.handles()[0]

        # 1) domains, 2) the MX records from dnsmasq
        wd.type("#domain-0", "office.test")
        wd.screenshot("1-domains")
        wd.button("Next")
        wd.wait_text("main", "Step 2 of 8")
        wd.wait_text("main", "isp.test")
        wd.screenshot("2-mx")
        wd.button("Next")
        # 3) the queuing server: proposed from the MX set (isp.test), here the private Postfix
        wd.wait_text("main", "Step 3 of 8")
        assert "isp.test" in wd.s("GET", f"/element/{wd.find('#host')}/property/value"), "the backup MX was not proposed"
        wd.type("#host", queue.host)
        wd.type("#port", str(queue.port))
        wd.button("Check what the server supports")
        wd.wait_text("[data-testid=server-report]", "ETRN: yes")
        wd.screenshot("3-server")
        wd.button("Next")
        wd.wait_text("main", "Step 4 of 8")
        wd.screenshot("4-login")
        wd.button("Next")
        # 5) where the mail goes
        wd.type("#maildir", maildir)
        wd.button("Test")
        wd.wait_text("main", "is ready for mail")
        wd.screenshot("5-delivery")
        wd.button("Next")
        # 6) listening address and port
        wd.wait_text("main", "Step 6 of 8")
        if wd.exists("#listen-address"):
            wd.type("#listen-address", "127.0.0.1")
        wd.type("#listen-port", str(listen_port))
        wait_until(lambda: "Checking your MX records" not in wd.text("main"), "the reachability check to finish")
        # The MX says mail.office.test = 127.0.0.1, where Postern listens, but not on port 25.
        wd.wait_text("main", "only if your router forwards the port")
        wd.screenshot("6-port")
        wd.button("Next")
        # 7) sending mail, through the private smarthost
        wd.wait_text("main", "Step 7 of 8: Sending mail")
        outbound.sending_step(wd, smarthost, submit_port)
        wd.button("Next")
        # 8) summary, save, and the live test
        wd.wait_text("[data-testid=summary]", f"{queue.host}:{queue.port} (ETRN)")
        wd.wait_text("[data-testid=summary]", f"through smtp://{smarthost.host}:{smarthost.port}")
        wd.screenshot("7-summary")
        wd.button("Save and start")
        wd.wait_text("main", "Postern is running")
        wait_for_messages(maildir, 3, "the mail held before the wizard")
        queue.command("queue 2")
        wd.button("Fetch now")
        wait_for_messages(maildir, 5, "the mail released by the wizard's 'Fetch now'")
        wd.wait_text("[data-testid=live]", "Received a message from sender-4@example.net")
        wd.screenshot("8-fetched")
        # Released mail is announced once the deliveries go quiet (3, or 5 if the wizard's
        # "Fetch now" came before that); later releases fall within the rate limit.
        released = wait_until(lambda: [n["body"] for n in tray.notifications if "released by" in n["body"]], "the 'new messages released' notification")
        assert re.fullmatch(rf"[35] new messages released by {re.escape(queue.host)}:{queue.port}", released[0]), released
        config = open(env["POSTERN_CONFIG"]).read()
        assert f'listen = ["127.0.0.1:{listen_port}"]' in config or wd.exists("#listen-address") is False, config
        assert "password" not in config.lower(), config
        outbound.check_config(env["POSTERN_CONFIG"], f"127.0.0.1:{submit_port}", smarthost)
        autostart = os.path.join(env["HOME"], ".config", "autostart")
        try:
            wait_until(lambda: os.path.isdir(autostart) and os.listdir(autostart), "the autostart entry (start at login was ticked)", timeout=10)
        except AssertionError:
            raise AssertionError(f"no autostart entry in {autostart}; the wizard says {wd.text('main')!r}") from None

        # The tray, over D-Bus
        labels = wait_until(lambda: (lambda l: l if l[0].startswith("Online") else None)(tray.labels()), "the tray status line to say Online")
        assert labels[1:] == ["Open Postern", "Fetch mail now", "Pause automatic fetching", "Check MX records…", "Settings…", "Activity…", "Outgoing queue (1)…", "---", "Quit"], labels
        print("tray menu:", labels, flush=True)
        queue.command("queue 2")
        tray.click("Fetch mail now")
        wait_for_messages(maildir, 7, "the mail released by the tray's 'Fetch mail now'")
        wait_until(lambda: queue.command("queue-len") == "0", "Postfix's queue to be empty")
        etrns = int(queue.command("etrn-count"))
        assert etrns >= 3, f"Postfix saw {etrns} ETRN commands, expected at least 3 (start, wizard, tray)"

        # The other windows, opened from the tray
        known = {wizard}
        for label, window, title, needle, shot in [
            ("Open Postern", "dashboard", "Postern dashboard", "Queuing servers", "12-dashboard"),
            ("Settings…", "settings", "Postern settings", "Queuing servers", "9-settings"),
            ("Check MX records…", "MX report", "MX records", "Fine", "10-mx-report"),
            ("Activity…", "activity", "Postern activity", "received from <sender-6@example.net>", "11-activity"),
        ]:
            tray.click(label)
            known.add(switch_to_new_window(wd, known, window))
            wd.wait_text("body", needle)
            if window == "dashboard":
                check_dashboard(wd, maildir, queue, outgoing=1)
            elif window == "activity":
                check_activity(wd, maildir)
            wd.screenshot(shot, title)

        # Outgoing mail: the "stuck" notification, real mail queued, the Queue window.
        def open_queue(label):
            tray.click(label)
            known.add(switch_to_new_window(wd, known, "queue"))
        posternd = os.path.join(os.path.dirname(app), "posternd")
        outbound.check_queue(wd, tray, smarthost, posternd, env, spool, stuck_id, submit_port, open_queue)

        app_pid = next(pid for pid in wd.app_pids() if exe(pid) == app)
        window_pids = lambda: [pid for pid in descendants(app_pid) if exe(pid) == window_app]
        [window_pid] = window_pids()  # one window process for all six windows
        released = [n["body"] for n in tray.notifications if "released by" in n["body"]]
        assert len(released) == 1, f"the rate limit let through {released}"
        print("notifications:", [n["body"] for n in tray.notifications], flush=True)

        # Closing the last window ends the window process (and WebKit's with it); the tray and
        # its engine keep running.
        # Ctrl+W in each page (the UI closes its window through Tauri): WebDriver's own "close
        # window" would end the session at the last one, and WebKitWebDriver then kills the
        # process it started, the tray.
        for handle in wd.handles():
            wd.switch_to(handle)
            wd.s("POST", "/execute/sync", {"script": "window.dispatchEvent(new KeyboardEvent('keydown', {key: 'w', ctrlKey: true})); return null", "args": []})
        wait_until(lambda: not running(window_pid), "the window process to exit after its last window closed", timeout=20)
        assert running(app_pid), "the tray exited with the windows"
        webkit = lambda: [pid for pid in descendants(app_pid) if "WebKit" in (exe(pid) or "")]
        try:
            wait_until(lambda: not webkit(), "WebKit's processes to end with the window process", timeout=20)
        except AssertionError:
            raise AssertionError("WebKit processes left under the tray: " + repr([(p, exe(p), open(f"/proc/{p}/stat").read().split(")")[1].split()[:2]) for p in webkit()])) from None
        status = subprocess.run([os.path.join(os.path.dirname(app), "posternd"), "status", "--json"],
                                env=env, capture_output=True, text=True, timeout=30)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["messages_received"] == 7, status.stdout
        assert tray.labels()[0].startswith("Online"), tray.labels()
        print("closed every window: the window process exited, the tray's engine still answers", flush=True)

        # Settings again starts a new window process; Quit ends the tray and it.
        tray.click("Settings…")
        wait_until(window_pids, "a new window process for Settings")
        later = window_pids()
        tray.click("Quit")
        wait_until(lambda: not running(app_pid), "the app to exit after Quit", timeout=20)
        wait_until(lambda: not any(running(p) for p in later), "the window process to exit with the tray", timeout=20)
        print("PASS: wizard completed in the real window, 7 messages in the Maildir, tray menu works, the Queue window retries and drops", flush=True)
        ok = True
    finally:
        if wd:
            wd.close()
        for part in (tray, queue, smarthost):
            if part:
                part.close()
        for f in logs.values():
            f.close()
        if not ok or os.environ.get("VERBOSE"):
            for name in logs:
                with open(os.path.join(work, f"{name}.log"), errors="replace") as f:
                    sys.stderr.write(f"--- {name} log (end) ---\n{f.read()[-4000:]}\n")
        if not os.environ.get("KEEP"):
            subprocess.run(["rm", "-rf", work], check=False)
        else:
            print("kept", work)


if __name__ == "__main__":
    main()
