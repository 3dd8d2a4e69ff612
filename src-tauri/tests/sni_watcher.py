#!/usr/bin/python3
"""A StatusNotifierWatcher and a notification server of our own on the session bus, as a
process: owns org.kde.StatusNotifierWatcher and org.freedesktop.Notifications, prints `ready`
once it does, then one line `registered BUSNAME OBJECTPATH` for each tray item that registers
and one line `notify {"summary": ..., "body": ...}` (JSON) for each desktop notification.
Stops on SIGTERM.

Tests start it before the app (an app finding no watcher falls back to an invisible XEmbed icon)
and read its stdout; they call the item's menu over D-Bus themselves. Debian's python3-dbus and
python3-gi are needed, so run it with /usr/bin/python3.
"""
import json
import signal
import sys
import time

import dbus
import dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

IFACE = "org.kde.StatusNotifierWatcher"


class Watcher(dbus.service.Object):
    """The part of org.kde.StatusNotifierWatcher an appindicator item needs."""

    def __init__(self, bus):
        self.items = []
        self.registered_at = None  # time.monotonic() of the first registration (make bench)
        super().__init__(bus, "/StatusNotifierWatcher")

    @dbus.service.method(IFACE, in_signature="s", out_signature="", sender_keyword="sender")
    def RegisterStatusNotifierItem(self, service, sender=None):
        if self.registered_at is None:
            self.registered_at = time.monotonic()
        path = service if service.startswith("/") else "/StatusNotifierItem"
        name = sender if service.startswith("/") else service
        self.items.append((name, path))
        print(f"registered {name} {path}", flush=True)
        self.StatusNotifierItemRegistered(f"{name}{path}")

    @dbus.service.method(IFACE, in_signature="s", out_signature="")
    def RegisterStatusNotifierHost(self, service):
        pass

    @dbus.service.signal(IFACE, signature="s")
    def StatusNotifierItemRegistered(self, item):
        pass

    @dbus.service.method(dbus.PROPERTIES_IFACE, in_signature="ss", out_signature="v")
    def Get(self, iface, prop):
        return self.GetAll(iface)[prop]

    @dbus.service.method(dbus.PROPERTIES_IFACE, in_signature="s", out_signature="a{sv}")
    def GetAll(self, iface):
        return {
            "RegisteredStatusNotifierItems": dbus.Array([f"{n}{p}" for n, p in self.items], signature="s"),
            "IsStatusNotifierHostRegistered": dbus.Boolean(True),
            "ProtocolVersion": dbus.Int32(0),
        }


class Notifications(dbus.service.Object):
    """The part of org.freedesktop.Notifications (Desktop Notifications 1.2) senders use."""

    IFACE = "org.freedesktop.Notifications"

    def __init__(self, bus):
        self.next_id = 0
        super().__init__(bus, "/org/freedesktop/Notifications")

    @dbus.service.method(IFACE, in_signature="susssasa{sv}i", out_signature="u")
    def Notify(self, app_name, replaces_id, app_icon, summary, body, actions, hints, expire_timeout):
        self.next_id += 1
        print("notify " + json.dumps({"summary": str(summary), "body": str(body)}), flush=True)
        return dbus.UInt32(self.next_id)

    @dbus.service.method(IFACE, in_signature="", out_signature="as")
    def GetCapabilities(self):
        return dbus.Array(["body"], signature="s")

    @dbus.service.method(IFACE, in_signature="", out_signature="ssss")
    def GetServerInformation(self):
        return ("postern-test", "postern", "1", "1.2")

    @dbus.service.method(IFACE, in_signature="u", out_signature="")
    def CloseNotification(self, notification_id):
        pass


def menu_entries(bus, name, path):
    """The item's dbusmenu and its top-level entries as (id, label, enabled); a separator is
    ("---", disabled)."""
    item = bus.get_object(name, path)
    menu_path = item.Get("org.kde.StatusNotifierItem", "Menu", dbus_interface=dbus.PROPERTIES_IFACE)
    menu = dbus.Interface(bus.get_object(name, menu_path), "com.canonical.dbusmenu")
    _, layout = menu.GetLayout(0, -1, [])
    entries = []
    for cid, props, _ in layout[2]:
        if props.get("type") == "separator":
            entries.append((int(cid), "---", False))
        else:
            entries.append((int(cid), str(props.get("label", "")), bool(props.get("enabled", True))))
    return menu, entries


def click(bus, name, path, label):
    """Clicks the entry labelled `label`, as a desktop's tray would."""
    menu, entries = menu_entries(bus, name, path)
    item_id = next((i for i, text, _ in entries if text == label), None)
    if item_id is None:
        raise RuntimeError(f"no '{label}' in the tray menu: {[text for _, text, _ in entries]}")
    menu.Event(item_id, "clicked", dbus.String("", variant_level=1), dbus.UInt32(int(time.time())))


def main():
    DBusGMainLoop(set_as_default=True)
    bus = dbus.SessionBus()
    name = dbus.service.BusName("org.kde.StatusNotifierWatcher", bus, do_not_queue=True)
    watcher = Watcher(bus)
    notify_name = dbus.service.BusName("org.freedesktop.Notifications", bus, do_not_queue=True)
    notifications = Notifications(bus)
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print("ready", flush=True)
    loop.run()
    del watcher, name, notifications, notify_name


if __name__ == "__main__":
    sys.exit(main())
