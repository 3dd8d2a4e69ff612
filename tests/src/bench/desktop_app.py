#!/usr/bin/python3
"""One repetition of `make bench` rows 6 and 7b, the desktop app: the tray process `postern`
and the window process `postern-window` it starts for Settings:

  7b  time from spawning `postern` (existing config, so no window) to its StatusNotifierItem
      registering at the org.kde.StatusNotifierWatcher this script owns;
  6   PSS summed over the tray's process tree (the tray; with a window open also postern-window
      and its WebKit processes) at idle with no window, with the settings window open (opened
      from the tray menu over dbusmenu, as a user would), and 5 s after closing it (Ctrl+W, which
      the UI handles; the window process then exits).

Run inside a private session bus and display; Debian's python3 has python3-dbus and python3-gi:
  dbus-run-session -- xvfb-run -a -s "-screen 0 1280x900x24" /usr/bin/python3 desktop_app.py BIN
Prints one JSON object on the last line of stdout. The queuing server in the config is a closed
local port, so nothing leaves the machine. Needs xdotool.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import dbus
import dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

TIMEOUT = 60  # seconds for each wait
SETTLE = float(os.environ.get("BENCH_SETTLE", "5"))  # start-up allocations finish; a measurement
SETTINGS_TITLE = "^Postern settings$"

# The watcher the tray and native tests use (it also notes when the item registered).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../src-tauri/tests"))
from postern_config import write_config  # noqa: E402
from sni_watcher import Watcher, click  # noqa: E402


def wait_until(ctx, predicate, what):
    """Runs the main loop (so the watcher answers) until predicate() holds."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        while ctx.pending():
            ctx.iteration(False)
        if predicate():
            return
        # Wake at least every 10 ms to re-check; D-Bus calls wake the loop at once.
        GLib.timeout_add(10, lambda: False)
        ctx.iteration(True)
    raise RuntimeError(f"timed out after {TIMEOUT} s waiting for {what}")


def settle(ctx, seconds):
    end = time.monotonic() + seconds
    wait_until(ctx, lambda: time.monotonic() >= end, "the settle time")


def tree(pid):
    """The PID and all its descendants."""
    pids = [pid]
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return pids
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children = f.read().split()
        except OSError:
            continue
        for child in children:
            pids.extend(tree(int(child)))
    return pids


def rollup(pid):
    """Rss, Pss and USS (Private_Clean + Private_Dirty) of one process, in KiB."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1])
    return fields["Rss"], fields["Pss"], fields["Private_Clean"] + fields["Private_Dirty"]


def sharers(tree_pids):
    """Processes outside the app's tree that map libwebkit2gtk too: they take a share of its
    pages, so PSS is lower while they run (e.g. other WebKit tests on the machine)."""
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in tree_pids:
            continue
        try:
            with open(f"/proc/{entry}/maps") as f:
                if "libwebkit2gtk" in f.read():
                    count += 1
        except OSError:
            continue
    return count


def pss(pid, stage):
    """PSS of the process tree in KiB, each process as (comm, PSS KiB), the tree's RSS and USS,
    and how many other processes share WebKit. With BENCH_SMAPS=DIR set, each process's
    /proc/PID/smaps is copied to DIR/STAGE-COMM-PID.smaps for a closer look."""
    total, rss, uss, procs = 0, 0, 0, []
    keep = os.environ.get("BENCH_SMAPS")
    pids = tree(pid)
    for p in pids:
        try:
            p_rss, kib, p_uss = rollup(p)
            with open(f"/proc/{p}/comm") as f:
                comm = f.read().strip()
        except (OSError, KeyError):
            continue
        total += kib
        rss += p_rss
        uss += p_uss
        procs.append((comm, kib))
        if keep:
            try:
                with open(f"/proc/{p}/smaps") as src, open(f"{keep}/{stage}-{comm}-{p}.smaps", "w") as dst:
                    dst.write(src.read())
            except OSError:
                pass
    return {"pss_kib": total, "rss_kib": rss, "uss_kib": uss, "procs": procs, "sharers": sharers(set(pids))}


def settings_window_ids():
    out = subprocess.run(["xdotool", "search", "--name", SETTINGS_TITLE], capture_output=True, text=True)
    return out.stdout.split()


def main():
    binary = os.path.abspath(sys.argv[1])
    DBusGMainLoop(set_as_default=True)
    bus = dbus.SessionBus()
    _name = dbus.service.BusName("org.kde.StatusNotifierWatcher", bus)
    watcher = Watcher(bus)
    work = tempfile.TemporaryDirectory(prefix="postern-bench-app-")
    config = os.path.join(work.name, "postern.toml")
    write_config(config, 9, f"{work.name}/Maildir")
    env = dict(os.environ, POSTERN_CONFIG=config, POSTERN_NOTIFICATIONS="off")
    log_path = os.path.join(work.name, "app.log")
    log = open(log_path, "w")
    ctx = GLib.MainContext.default()

    def log_has(text):
        with open(log_path) as f:
            return text in f.read()

    started = time.monotonic()
    app = subprocess.Popen([binary], env=env, stdout=log, stderr=subprocess.STDOUT)
    result = {}
    try:
        wait_until(ctx, lambda: watcher.registered_at is not None, "the tray item to register")
        result["start_to_tray_s"] = watcher.registered_at - started
        wait_until(ctx, lambda: log_has("listening on"), "the engine to listen")
        settle(ctx, SETTLE)
        result["idle"] = pss(app.pid, "idle")

        name, path = watcher.items[0]
        click(bus, name, path, "Settings…")
        wait_until(ctx, lambda: settings_window_ids(), "the settings window")
        settle(ctx, SETTLE)
        result["open"] = pss(app.pid, "open")

        win = settings_window_ids()[0]
        subprocess.run(["xdotool", "windowfocus", "--sync", win], check=True)
        subprocess.run(["xdotool", "mousemove", "--window", win, "100", "100", "click", "1"], check=True)
        subprocess.run(["xdotool", "key", "ctrl+w"], check=True)
        wait_until(ctx, lambda: not settings_window_ids(), "the settings window to close")
        wait_until(ctx, lambda: tree(app.pid) == [app.pid], "the window process to exit")
        settle(ctx, SETTLE)
        result["closed"] = pss(app.pid, "closed")
    except Exception as e:  # reported to the bench as the reason the row is not measured
        log.flush()
        with open(log_path) as f:
            tail = f.read()[-1500:]
        result = {"error": f"{e}; app log: {tail}"}
    finally:
        if app.poll() is None:
            app.terminate()
            try:
                app.wait(timeout=10)
            except subprocess.TimeoutExpired:
                app.kill()
                app.wait()
        log.close()
        work.cleanup()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
