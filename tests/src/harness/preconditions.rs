//! What a test needs of the machine (root, a session bus), and what it does without it.

use super::error::Result;

/// `Ok(())` when this process may start root-only peers (a private Postfix, network
/// namespaces, smtp-sink), else the reason to skip.
///
/// CI runs as root and must never skip: when the environment variable `CI` is set and we are not
/// root, this panics instead of returning the reason.
pub fn require_root() -> Result<(), String> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let why = "this test needs root (a private Postfix, smtp-sink or network namespaces); \
               run it as root, e.g. `sudo make test`"
        .to_string();
    let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    if ci {
        panic!("{why} (CI is set, so it must not be skipped)");
    }
    Err(why)
}

/// `true` when a D-Bus session bus is there for keyring tests (`make test` starts one with an
/// unlocked gnome-keyring). Without one the test should return; under CI that is a failure.
pub fn require_session_bus() -> bool {
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run the keyring tests: run them through `make test` (dbus-run-session + gnome-keyring)"
    );
    eprintln!("SKIPPED: no D-Bus session bus; run `make test`");
    false
}
