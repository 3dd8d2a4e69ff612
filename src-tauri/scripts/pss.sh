#!/usr/bin/env bash
# Memory of the tray app, measured (not asserted): PSS summed over the app's whole process tree
# (the app and its WebKit processes), at idle with no window, with the settings window open,
# and after closing it. Runs the app on a private display and session bus with a throwaway
# config (queuing server = a closed local port, so nothing leaves the machine).
#   usage: src-tauri/scripts/pss.sh [path/to/postern]   (default target/release/postern)
# Needs xvfb, xauth, xdotool, dbus. Prints one Markdown table.
set -euo pipefail

if [[ -z ${PSS_INNER:-} ]]; then
  exec env PSS_INNER=1 dbus-run-session -- xvfb-run -a -s "-screen 0 1280x900x24" "$0" "$@"
fi

bin=$(realpath "${1:-target/release/postern}")
work=$(mktemp -d)
app_pid=
cleanup() {
  [[ -n $app_pid ]] && kill "$app_pid" 2>/dev/null && wait "$app_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/postern.toml" <<TOML
domains = ["office.test"]
[[queue_servers]]
host = "127.0.0.1"
port = 9
protocol = "etrn"
tls = "off"
[inbound]
listen = ["127.0.0.1:0"]
deliver = "maildir:$work/Maildir"
[link]
refetch_every = "0"
TOML
export POSTERN_CONFIG=$work/postern.toml POSTERN_NOTIFICATIONS=off

tree_pids() { # the PID and all its descendants
  local pid=$1
  echo "$pid"
  for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do tree_pids "$child"; done
}
pss_mb() {
  local total=0 kb
  for pid in $(tree_pids "$app_pid"); do
    kb=$(awk '/^Pss:/ {print $2}' /proc/"$pid"/smaps_rollup 2>/dev/null || echo 0)
    total=$((total + ${kb:-0}))
  done
  echo "$((total / 1024)) MB ($(tree_pids "$app_pid" | wc -l) processes)"
}
wait_for() { # condition command, description
  for _ in $(seq 1 600); do
    if eval "$1"; then return 0; fi
    sleep 0.1
  done
  echo "pss.sh: timed out waiting for $2" >&2
  exit 1
}
settle() { sleep "${PSS_SETTLE:-5}"; } # let start-up allocations finish; a measurement, not a sync

"$bin" >"$work/app.log" 2>&1 &
app_pid=$!
wait_for "grep -q 'listening on' '$work/app.log'" "the engine to start"
settle
idle=$(pss_mb)

"$bin" >/dev/null 2>&1 || true # second instance: asks the first to open Settings, then exits
wait_for "xdotool search --name '^Postern settings$' >/dev/null 2>&1" "the settings window"
settle
open=$(pss_mb)

win=$(xdotool search --name '^Postern settings$' | head -1)
xdotool windowfocus --sync "$win"
xdotool mousemove --window "$win" 100 100 click 1 # focus the page inside the window
xdotool key ctrl+w
wait_for "! xdotool search --name '^Postern settings$' >/dev/null 2>&1" "the settings window to close"
settle
closed=$(pss_mb)

echo "| postern (PSS of the process tree) | |"
echo "|---|---|"
echo "| idle, no window | $idle |"
echo "| settings window open | $open |"
echo "| after closing it | $closed |"
