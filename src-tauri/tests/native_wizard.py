#!/usr/bin/python3
"""Native end to end: the real `postern` in a real WebKit window, driven through tauri-driver
and WebKitWebDriver. Fresh config path -> the setup wizard opens; the test completes it through
the UI against a scripted ETRN queuing server on 127.0.0.1 that, like Postfix, connects back
and delivers the held message after ETRN; the message must land in the Maildir chosen in the
wizard. Then "Fetch now" releases a second one. Screenshots of each step go to
tests/artifacts/desktop/native-*.png.

  dbus-run-session -- xvfb-run -a /usr/bin/python3 src-tauri/tests/native_wizard.py target/release/postern
Needs tauri-driver (cargo install tauri-driver --locked) and webkit2gtk-driver.
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

TIMEOUT = 60
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/artifacts/desktop")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QueuingServer:
    """ETRN -> 250, then delivers one held message to the office's listener (as Postfix does)."""

    def __init__(self, deliver_to_port):
        self.deliver_to_port = deliver_to_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.etrns = []
        self.delivered = []
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
                threading.Thread(target=self.release, args=(len(self.etrns),), daemon=True).start()
            elif verb == "QUIT":
                f.write(b"221 bye\r\n"); f.flush()
                break
            else:
                f.write(b"502 not here\r\n")
            f.flush()
        conn.close()

    def release(self, n):
        with socket.create_connection(("127.0.0.1", self.deliver_to_port), timeout=10) as s:
            f = s.makefile("rwb")

            def expect(code):
                while True:
                    line = f.readline().decode()
                    if not line:
                        raise AssertionError(f"connection closed, expected {code}")
                    if line[3:4] != "-":
                        assert line.startswith(code), line
                        return

            def send(cmd, code):
                f.write(cmd.encode() + b"\r\n"); f.flush()
                expect(code)

            expect("220")
            send("EHLO isp.test", "250")
            send("MAIL FROM:<anna@customer.example>", "250")
            send("RCPT TO:<info@office.test>", "250")
            send("DATA", "354")
            send(f"Subject: held message {n}\r\nFrom: anna@customer.example\r\nTo: info@office.test\r\n\r\nHello office.\r\n.", "250")
            send("QUIT", "221")
        self.delivered.append(n)


class WebDriver:
    def __init__(self, url, application):
        self.url = url
        reply = self.call("POST", "/session", {"capabilities": {"alwaysMatch": {"tauri:options": {"application": application}}}})
        self.session = reply["sessionId"]

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            raise AssertionError(f"{method} {path}: {e.read().decode()[:500]}") from None

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def find(self, css=None, xpath=None):
        using, value = ("css selector", css) if css else ("xpath", xpath)
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                return self.s("POST", "/element", {"using": using, "value": value})[ELEMENT]
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def type(self, css, text):
        el = self.find(css)
        self.s("POST", f"/element/{el}/clear", {})
        self.s("POST", f"/element/{el}/value", {"text": text})

    def click(self, css=None, xpath=None):
        # A script click: WebKitWebDriver's native click waits for the page to settle and drops
        # the connection while a command (the MX lookup) is still running.
        el = self.find(css, xpath)
        self.s("POST", "/execute/sync", {"script": "arguments[0].click()", "args": [{ELEMENT: el}]})

    def button(self, label):
        print("click", label, flush=True)
        self.click(xpath=f"//button[normalize-space()='{label}']")

    def text(self, css):
        return self.s("GET", f"/element/{self.find(css)}/text")

    def wait_text(self, css, needle):
        deadline = time.monotonic() + TIMEOUT
        while needle not in self.text(css):
            if time.monotonic() > deadline:
                raise AssertionError(f"{css} never showed {needle!r}: {self.text(css)!r}")
            time.sleep(0.1)

    def screenshot(self, name):
        os.makedirs(ARTIFACTS, exist_ok=True)
        with open(os.path.join(ARTIFACTS, f"native-{name}.png"), "wb") as f:
            f.write(base64.b64decode(self.s("GET", "/screenshot")))

    def close(self):
        try:
            self.call("DELETE", f"/session/{self.session}")
        except Exception:
            pass


def wait_until(predicate, what):
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def main():
    binary = os.path.abspath(sys.argv[1])
    driver_bin = shutil.which("tauri-driver") or os.path.expanduser("~/.cargo/bin/tauri-driver")
    work = tempfile.mkdtemp(prefix="postern-native-")
    listen_port = free_port()
    server = QueuingServer(listen_port)
    maildir = os.path.join(work, "Maildir")
    env = dict(os.environ, POSTERN_CONFIG=os.path.join(work, "config", "postern.toml"), POSTERN_NOTIFICATIONS="off")
    driver_port = free_port()
    log = open(os.path.join(work, "driver.log"), "w")
    driver = subprocess.Popen([driver_bin, "--port", str(driver_port), "--native-port", str(free_port())], env=env, stdout=log, stderr=subprocess.STDOUT)
    wd = None
    try:
        url = f"http://127.0.0.1:{driver_port}"
        wait_until(lambda: _up(url), "tauri-driver")
        wd = WebDriver(url, binary)

        wd.type("#domain-0", "office.test")
        wd.screenshot("1-domains")
        wd.button("Next")
        wd.wait_text("main", "Step 2 of 7")
        wd.screenshot("2-mx")
        wd.button("Next")
        wd.type("#host", "127.0.0.1")
        wd.type("#port", str(server.port))
        wd.button("Check what the server supports")
        wd.wait_text("[data-testid=server-report]", "ETRN: yes")
        wd.screenshot("3-server")
        wd.button("Next")
        wd.wait_text("main", "Step 4 of 7")
        wd.button("Next")
        wd.type("#maildir", maildir)
        wd.button("Test")
        wd.wait_text("main", "is ready for mail")
        wd.screenshot("5-delivery")
        wd.button("Next")
        wd.type("#listen-port", str(listen_port))
        wd.screenshot("6-port")
        wd.button("Next")
        wd.wait_text("[data-testid=summary]", f"127.0.0.1:{server.port} (ETRN)")
        wd.screenshot("7-summary")
        if os.environ.get("NO_AUTOSTART"):
            wd.click(xpath="//label[contains(., 'Start Postern when I log in')]/input")
        wd.button("Save and start")
        wd.wait_text("main", "Postern is running")

        new = os.path.join(maildir, "new")
        wait_until(lambda: os.path.isdir(new) and len(os.listdir(new)) >= 1, "the first released message in the Maildir")
        wd.button("Fetch now")
        wait_until(lambda: len(os.listdir(new)) >= 2, "the message released by 'Fetch now'")
        wd.wait_text("[data-testid=live]", "Received a message from anna@customer.example")
        wd.screenshot("8-fetched")
        bodies = [open(os.path.join(new, n), encoding="utf-8", errors="replace").read() for n in sorted(os.listdir(new))]
        assert all("Hello office." in b for b in bodies), bodies
        assert server.etrns == ["ETRN office.test", "ETRN office.test"], server.etrns
        print(f"PASS: wizard completed in the real window; {len(bodies)} messages in {new}")
    finally:
        if wd:
            wd.close()
        driver.terminate()
        try:
            driver.wait(timeout=10)
        except subprocess.TimeoutExpired:
            driver.kill()
        server.stop = True
        log.close()
        if os.environ.get("VERBOSE"):
            sys.stderr.write(open(os.path.join(work, "driver.log")).read()[-4000:])
        shutil.rmtree(work, ignore_errors=True)


def _up(url):
    try:
        urllib.request.urlopen(url + "/status", timeout=1)
        return True
    except Exception:
        return False


if __name__ == "__main__":
    main()
