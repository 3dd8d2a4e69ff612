#!/bin/sh
# postern .deb: create the user of the optional posternd service; the service stays disabled.
set -e
if [ "$1" = configure ]; then
  if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers postern.conf
  elif ! getent passwd postern >/dev/null; then
    adduser --system --group --home /var/lib/postern --no-create-home postern
  fi
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
  fi
fi
exit 0
