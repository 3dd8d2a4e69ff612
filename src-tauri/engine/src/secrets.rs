//! Passwords live in the OS keyring (service `postern`, account `USERNAME@HOST`), never in the
//! config file or the logs.
//!
//! [`SecretStore`] is what the engine sees; [`OsKeyring`] is the keyring-core store of the
//! platform (Secret Service on Linux, Keychain on macOS, Credential Manager on Windows) and
//! [`MemoryStore`] is for tests. The OS stores may block (D-Bus round trips), so async callers go
//! through [`get_password`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The keyring service name of every Postern secret (contract).
pub const SERVICE: &str = "postern";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the OS keyring is not available: {detail}. {}", unavailable_fix())]
    Unavailable { detail: String },
    #[error("no password is stored for {name}. Store it with: posternd secret set {name}")]
    Missing { name: String },
    #[error(
        "the OS keyring refused access to {name}: {detail}. Unlock the keyring (log in to the desktop session) and try again"
    )]
    Locked { name: String, detail: String },
    #[error("the OS keyring failed for {name}: {detail}")]
    Failed { name: String, detail: String },
    #[error(
        "\"{name}\" is not a secret name: use USERNAME@HOST of the server entry, e.g. office@mail.isp.example"
    )]
    BadName { name: String },
}

fn unavailable_fix() -> &'static str {
    if cfg!(target_os = "linux") {
        "Postern keeps passwords in the Secret Service (GNOME Keyring, KWallet). On a headless \
         server install gnome-keyring and run posternd inside a D-Bus session with an unlocked \
         keyring, e.g. `dbus-run-session -- sh -c 'echo -n PASSPHRASE | gnome-keyring-daemon \
         --unlock --components=secrets; exec posternd run'`"
    } else {
        "Postern keeps passwords in the system keychain / Credential Manager; make sure you are \
         logged in to a desktop session"
    }
}

/// Where passwords come from.
pub trait SecretStore: Send + Sync + 'static {
    /// `Ok(None)` when nothing is stored under `name`.
    fn get(&self, name: &str) -> Result<Option<String>, SecretError>;
    fn set(&self, name: &str, password: &str) -> Result<(), SecretError>;
    /// Deleting a missing entry is not an error.
    fn delete(&self, name: &str) -> Result<(), SecretError>;
    /// Which backend this is, for logs and `config check`.
    fn describe(&self) -> String;
}

/// Checks the `USERNAME@HOST` form of a secret name.
pub fn check_name(name: &str) -> Result<(), SecretError> {
    match name.rsplit_once('@') {
        Some((user, host)) if !user.is_empty() && !host.is_empty() && !host.contains('/') => Ok(()),
        _ => Err(SecretError::BadName {
            name: name.to_string(),
        }),
    }
}

/// Reads `name` from `store` off the async runtime; a missing entry is an error here.
pub async fn get_password(
    store: Arc<dyn SecretStore>,
    name: String,
) -> Result<String, SecretError> {
    let lookup = name.clone();
    let result = tokio::task::spawn_blocking(move || store.get(&lookup))
        .await
        .map_err(|e| SecretError::Failed {
            name: name.clone(),
            detail: e.to_string(),
        })?;
    result?.ok_or(SecretError::Missing { name })
}

/// In-memory store (tests, and `--secret-env`-less dry runs). Never persisted.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    entries: Arc<Mutex<HashMap<String, String>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with(name: &str, password: &str) -> Self {
        let store = Self::default();
        store.lock().insert(name.to_string(), password.to_string());
        store
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl SecretStore for MemoryStore {
    fn get(&self, name: &str) -> Result<Option<String>, SecretError> {
        Ok(self.lock().get(name).cloned())
    }
    fn set(&self, name: &str, password: &str) -> Result<(), SecretError> {
        check_name(name)?;
        self.lock().insert(name.to_string(), password.to_string());
        Ok(())
    }
    fn delete(&self, name: &str) -> Result<(), SecretError> {
        self.lock().remove(name);
        Ok(())
    }
    fn describe(&self) -> String {
        "in-memory store (test only)".into()
    }
}

/// The platform keyring through keyring-core.
#[derive(Debug)]
pub struct OsKeyring {
    backend: &'static str,
}

impl OsKeyring {
    /// Installs the platform's keyring-core store as the default and checks that it answers
    /// (a read of a name that does not exist), so an unavailable keyring is reported at start,
    /// not at the first fetch. Blocking: call from a plain thread or `spawn_blocking`.
    pub fn open() -> Result<OsKeyring, SecretError> {
        let backend = platform::install()?;
        let store = OsKeyring { backend };
        match keyring_core::Entry::new(SERVICE, "probe@postern.invalid")
            .and_then(|e| e.get_password())
        {
            Ok(_) | Err(keyring_core::Error::NoEntry) => Ok(store),
            Err(e) => Err(map_error("probe", e)),
        }
    }

    fn entry(&self, name: &str) -> Result<keyring_core::Entry, SecretError> {
        check_name(name)?;
        keyring_core::Entry::new(SERVICE, name).map_err(|e| map_error(name, e))
    }
}

impl SecretStore for OsKeyring {
    fn get(&self, name: &str) -> Result<Option<String>, SecretError> {
        match self.entry(name)?.get_password() {
            Ok(p) => Ok(Some(p)),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(map_error(name, e)),
        }
    }
    fn set(&self, name: &str, password: &str) -> Result<(), SecretError> {
        self.entry(name)?
            .set_password(password)
            .map_err(|e| map_error(name, e))
    }
    fn delete(&self, name: &str) -> Result<(), SecretError> {
        match self.entry(name)?.delete_credential() {
            Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
            Err(e) => Err(map_error(name, e)),
        }
    }
    fn describe(&self) -> String {
        format!("OS keyring ({})", self.backend)
    }
}

fn map_error(name: &str, e: keyring_core::Error) -> SecretError {
    match e {
        keyring_core::Error::NoStorageAccess(detail) => SecretError::Locked {
            name: name.to_string(),
            detail: detail.to_string(),
        },
        keyring_core::Error::NoDefaultStore => SecretError::Unavailable {
            detail: "no keyring store is configured".into(),
        },
        keyring_core::Error::PlatformFailure(detail) => {
            let detail = detail.to_string();
            // The Secret Service store reports a missing D-Bus session or provider as a platform
            // failure at the first call.
            if detail.contains("dbus")
                || detail.contains("D-Bus")
                || detail.contains("secret service")
            {
                SecretError::Unavailable { detail }
            } else {
                SecretError::Failed {
                    name: name.to_string(),
                    detail,
                }
            }
        }
        other => SecretError::Failed {
            name: name.to_string(),
            detail: other.to_string(),
        },
    }
}

#[cfg(target_os = "linux")]
mod platform {
    use super::SecretError;
    pub fn install() -> Result<&'static str, SecretError> {
        let store = zbus_secret_service_keyring_store::Store::new().map_err(|e| {
            SecretError::Unavailable {
                detail: e.to_string(),
            }
        })?;
        keyring_core::set_default_store(store);
        Ok("Secret Service")
    }
}

#[cfg(target_os = "macos")]
mod platform {
    use super::SecretError;
    pub fn install() -> Result<&'static str, SecretError> {
        let store = apple_native_keyring_store::keychain::Store::new().map_err(|e| {
            SecretError::Unavailable {
                detail: e.to_string(),
            }
        })?;
        keyring_core::set_default_store(store);
        Ok("macOS Keychain")
    }
}

#[cfg(target_os = "windows")]
mod platform {
    use super::SecretError;
    pub fn install() -> Result<&'static str, SecretError> {
        let store =
            windows_native_keyring_store::Store::new().map_err(|e| SecretError::Unavailable {
                detail: e.to_string(),
            })?;
        keyring_core::set_default_store(store);
        Ok("Windows Credential Manager")
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
mod platform {
    use super::SecretError;
    pub fn install() -> Result<&'static str, SecretError> {
        Err(SecretError::Unavailable {
            detail: "this operating system has no supported keyring".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_user_at_host() {
        assert!(check_name("office@mail.isp.example").is_ok());
        assert!(check_name("a@b@host").is_ok());
        assert!(check_name("office").is_err());
        assert!(check_name("@host").is_err());
        assert!(check_name("user@").is_err());
    }

    #[test]
    fn memory_store_round_trip() {
        let store = MemoryStore::new();
        store.set("u@h", "pw").unwrap();
        assert_eq!(store.get("u@h").unwrap().as_deref(), Some("pw"));
        store.delete("u@h").unwrap();
        assert_eq!(store.get("u@h").unwrap(), None);
    }
}
