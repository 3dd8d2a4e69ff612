#!/usr/bin/env bash
# Installs the Debian packages Postern's tests (or, with --runtime, `make run`) need.
# Idempotent: does nothing when everything is there; runs `apt-get update` only when something
# is missing. Works as root, uses sudo otherwise, and says what it could not do.
set -euo pipefail

mode=test
case "${1:-}" in
  --runtime) mode=runtime ;;
  --desktop) mode=desktop ;;
  --test | "") mode=test ;;
  -h | --help)
    echo "usage: $0 [--test | --runtime | --desktop]   (default --test)"
    exit 0
    ;;
  *)
    echo "$0: unknown option '$1' (use --test, --runtime or --desktop)" >&2
    exit 2
    ;;
esac

# package:command-it-provides (the command is checked too, so a half-removed package is noticed)
runtime_packages=(ca-certificates:update-ca-certificates)
test_packages=(
  postfix:postfix            # private Postfix = the ISP queuing server; smtp-sink, smtp-source
  swaks:swaks                # reference SMTP client
  libnet-ssleay-perl:        # swaks --tls (STARTTLS on the submission listener)
  dnsmasq-base:dnsmasq       # DNS zones for the MX checker
  fetchmail:fetchmail        # reference ETRN client
  gnome-keyring:gnome-keyring-daemon   # Secret Service for keyring tests
  dbus-daemon:dbus-run-session         # private session bus (package dbus pulls it in)
  dbus:dbus-daemon
  iproute2:ip                # network namespaces, veth
  libsecret-tools:secret-tool
  e2fsprogs:mkfs.ext4        # make bench row 2: a fresh filesystem for the Maildir
  mount:losetup
  openssl:openssl            # issue 12: a self-signed certificate made as users make one (CA:TRUE)
  sasl2-bin:saslpasswd2      # issue 15: Cyrus SASL (sasldb) so the private Postfix smarthost asks for AUTH
)
# Desktop app (`make run`, `make build`; `make test` builds it too). An empty command means
# "check the package only"; a trailing ":any" means the command alone is enough (a Node.js
# installed outside apt counts).
desktop_packages=(
  libwebkit2gtk-4.1-dev:
  libayatana-appindicator3-dev:
  build-essential:make
  pkg-config:pkg-config
  nodejs:node:any
  npm:npm:any
)
desktop_test_packages=(
  xvfb:Xvfb
  xauth:xauth
  webkit2gtk-driver:WebKitWebDriver
  xdotool:xdotool            # make bench row 6: finds and closes the settings window
  python3-dbus:              # the tray test and make bench own a StatusNotifierWatcher (/usr/bin/python3)
  python3-gi:
  imagemagick:import         # the native test grabs its screenshots from the X server
  chromium:chromium          # Playwright (playwright-core) runs ui/e2e in it
)
case $mode in
  runtime) wanted=("${runtime_packages[@]}") ;;
  desktop) wanted=("${runtime_packages[@]}" "${desktop_packages[@]}") ;;
  *) wanted=("${runtime_packages[@]}" "${test_packages[@]}" "${desktop_packages[@]}" "${desktop_test_packages[@]}") ;;
esac

missing=()
for entry in "${wanted[@]}"; do
  pkg=${entry%%:*}
  cmd=${entry#*:}
  any=no
  if [[ $cmd == *:any ]]; then
    cmd=${cmd%:any}
    any=yes
  fi
  if [[ $any == yes ]] && PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null; then
    continue
  fi
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  if [[ $status != "install ok installed" ]] || { [[ -n $cmd ]] && ! PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null; }; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-test-deps: all $mode packages present"
  exit 0
fi

echo "install-test-deps: installing ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root=(sudo)
elif command -v sudo >/dev/null && [[ -t 0 ]]; then
  as_root=(sudo)
else
  echo "install-test-deps: cannot install ${missing[*]}: not root and no usable sudo." >&2
  echo "  Run as root:  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
  echo "  (for postfix first: echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections)" >&2
  exit 1
fi

if ! command -v apt-get >/dev/null; then
  echo "install-test-deps: apt-get not found; this script knows Debian/Ubuntu only. Install: ${missing[*]}" >&2
  exit 1
fi

# Postfix must not ask questions nor configure a system mail server: the tests run private instances.
echo "postfix postfix/main_mailer_type select No configuration" | "${as_root[@]}" debconf-set-selections
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-test-deps: done"
