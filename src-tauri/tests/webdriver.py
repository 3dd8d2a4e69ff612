#!/usr/bin/python3
"""The pieces of the native desktop tests that drive a real window: just enough of W3C
WebDriver, spoken to Debian's WebKitWebDriver, and waiting for what a test expects. Used by
native_e2e.py and native_outbound.py; run with /usr/bin/python3.
"""
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

TIMEOUT = 60
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
HERE = os.path.dirname(os.path.abspath(__file__))
ARTIFACTS = os.path.join(HERE, "../../tests/artifacts/desktop")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid):
    """Children of every thread (the tray starts its window process from a runtime thread)."""
    out, children = [], []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children += [int(c) for c in f.read().split()]
        except OSError:
            continue
    for child in children:
        out.append(child)
        out.extend(descendants(child))
    return out


def wait_until(predicate, what, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def stop(proc, signal_first=True):
    """Ends a child we started, by PID: SIGTERM, then SIGKILL after 15 s."""
    if proc is None or proc.poll() is not None:
        return
    if signal_first:
        proc.terminate()
        try:
            proc.wait(timeout=15)
            return
        except subprocess.TimeoutExpired:
            pass
    proc.kill()
    proc.wait()

class WebDriver:
    """Just enough of W3C WebDriver, spoken to WebKitWebDriver."""

    def __init__(self, app, env, log):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(["WebKitWebDriver", f"--port={self.port}"], env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._up, "WebKitWebDriver to listen")
        caps = {"capabilities": {"alwaysMatch": {"webkitgtk:browserOptions": {"binary": app, "args": []}}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def _up(self):
        try:
            urllib.request.urlopen(self.url + "/status", timeout=1)
            return True
        except Exception:
            return False

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

    def exists(self, css):
        return bool(self.s("POST", "/elements", {"using": "css selector", "value": css}))

    def type(self, css, text):
        el = self.find(css)
        self.s("POST", f"/element/{el}/clear", {})
        self.s("POST", f"/element/{el}/value", {"text": text})

    def click(self, css=None, xpath=None):
        # A script click returns at once; a native click waits for the page to settle, which
        # takes as long as the command the button starts.
        el = self.find(css, xpath)
        self.s("POST", "/execute/sync", {"script": "arguments[0].click()", "args": [{ELEMENT: el}]})

    def select(self, css, value):
        """Chooses an option of a <select> as a user would (the page sees a change event)."""
        el = self.find(css)
        script = "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('change', {bubbles: true})); return null"
        self.s("POST", "/execute/sync", {"script": script, "args": [{ELEMENT: el}, value]})

    def clear_input(self, css):
        el = self.find(css)
        script = "arguments[0].value = ''; arguments[0].dispatchEvent(new Event('input', {bubbles: true})); return null"
        self.s("POST", "/execute/sync", {"script": script, "args": [{ELEMENT: el}]})

    def button(self, label):
        print("click", label, flush=True)
        self.click(xpath=f"//button[normalize-space()='{label}']")

    def text(self, css):
        # innerText through a script: WebKitWebDriver's element text fails on some pages
        # ("Cannot check the displayedness of a non-Element argument", a <datalist> here).
        self.find(css)
        return self.s("POST", "/execute/sync", {"script": "return document.querySelector(arguments[0]).innerText", "args": [css]})

    def wait_text(self, css, needle):
        try:
            wait_until(lambda: needle in self.text(css), f"{css} to show {needle!r}")
        except AssertionError:
            raise AssertionError(f"{css} never showed {needle!r}; it shows {self.text(css)!r}") from None

    def handles(self):
        return self.s("GET", "/window/handles")

    def switch_to(self, handle):
        self.s("POST", "/window", {"handle": handle})

    def screenshot(self, name, window="Set up Postern"):
        """Grabs the native window `window` (its title) from the X server once two frames
        are painted. Not WebDriver's screenshot: with GDK_GL=disable (the app's default, for
        memory) WebKit's snapshot of an unchanged page never answers."""
        self.s("POST", "/execute/async", {"script": "requestAnimationFrame(() => requestAnimationFrame(arguments[0]))", "args": []})
        os.makedirs(ARTIFACTS, exist_ok=True)
        subprocess.run(["import", "-window", window, os.path.join(ARTIFACTS, f"native-{name}.png")], check=True, timeout=30)

    def app_pids(self):
        """The app's process tree: the driver's descendants (the app and its WebKit processes)."""
        return descendants(self.proc.pid)

    def close(self):
        left = self.app_pids()
        try:
            self.call("DELETE", f"/session/{self.session}")
        except Exception:
            pass  # the app may be gone already (Quit)
        stop(self.proc)
        for pid in left:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
