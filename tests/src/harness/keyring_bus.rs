//! A private D-Bus session bus with an unlocked gnome-keyring (Secret Service) on a socket
//! *path*, for daemons inside network namespaces: the bus `dbus-run-session` makes here listens
//! on an abstract socket, and abstract sockets belong to a network namespace.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::error::{HarnessError, IoContext, Result};
use super::posternd::{ONE_SHOT_TIMEOUT, posternd_with};
use super::process::{output_within, terminate};
use super::wait::poll_until;

const START_TIMEOUT: Duration = Duration::from_secs(20);

/// dbus-daemon and gnome-keyring-daemon, both in the foreground, stopped by PID on drop.
pub struct PrivateKeyring {
    bus: Child,
    keyring: Option<Child>,
    address: String,
    _dir: tempfile::TempDir,
}

impl PrivateKeyring {
    /// Starts the bus, then the keyring (unlocked with a throw-away password), and waits until
    /// the keyring owns `org.freedesktop.secrets`.
    pub fn start() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("postern-bus-")
            .tempdir()
            .context(|| "create bus directory".into())?;
        let socket = dir.path().join("bus");
        let address = format!("unix:path={}", socket.display());
        let bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile"])
            .arg(format!("--address={address}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context(|| "start dbus-daemon (package dbus)".into())?;
        let mut guard = Self {
            bus,
            keyring: None,
            address,
            _dir: dir,
        };
        poll_until("the private bus socket", START_TIMEOUT, || {
            socket.exists().then_some(())
        })?;
        guard.keyring = Some(guard.spawn_keyring()?);
        poll_until(
            "gnome-keyring to own org.freedesktop.secrets",
            START_TIMEOUT,
            || guard.secrets_owned().then_some(()),
        )?;
        Ok(guard)
    }

    fn spawn_keyring(&self) -> Result<Child> {
        let home = self._dir.path();
        let runtime = home.join("run");
        std::fs::create_dir_all(&runtime).context(|| "create keyring runtime folder".into())?;
        set_private(&runtime)?;
        let mut child = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .env("HOME", home)
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("XDG_DATA_HOME", home.join("data"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context(|| "start gnome-keyring-daemon (package gnome-keyring)".into())?;
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            // The login keyring's password; the keyring is created with it.
            stdin
                .write_all(b"test")
                .context(|| "unlock gnome-keyring".into())?;
        }
        Ok(child)
    }

    fn secrets_owned(&self) -> bool {
        let out = output_within(
            Command::new("dbus-send")
                .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
                .args([
                    "--session",
                    "--dest=org.freedesktop.DBus",
                    "--print-reply",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                    "string:org.freedesktop.secrets",
                ]),
            None,
            Duration::from_secs(5),
        );
        out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("boolean true"))
    }

    /// `DBUS_SESSION_BUS_ADDRESS` for the daemons and commands that should use this keyring.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// `posternd secret set NAME` with `password`, into this keyring.
    pub fn set_secret(&self, name: &str, password: &str) -> Result<()> {
        let out = posternd_with(
            &["secret", "set", name],
            None,
            password.as_bytes(),
            &[("DBUS_SESSION_BUS_ADDRESS", &self.address)],
            ONE_SHOT_TIMEOUT,
        )?;
        if out.status.success() {
            Ok(())
        } else {
            Err(HarnessError::Other(format!(
                "posternd secret set {name} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }
}

#[cfg(unix)]
fn set_private(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .context(|| format!("chmod 700 {}", dir.display()))
}

impl Drop for PrivateKeyring {
    fn drop(&mut self) {
        if let Some(mut keyring) = self.keyring.take() {
            terminate(&mut keyring, Duration::from_secs(2));
        }
        terminate(&mut self.bus, Duration::from_secs(2));
    }
}
