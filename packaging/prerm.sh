#!/bin/sh
# postern .deb: stop and disable posternd if the administrator enabled it.
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl disable --now posternd.service >/dev/null 2>&1 || true
fi
exit 0
