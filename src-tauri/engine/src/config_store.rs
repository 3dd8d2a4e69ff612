//! Saving `postern.toml` from a front end: validated first, then written atomically (temporary
//! file in the same folder, fsync, rename over the old file, fsync the folder), so a crash or a
//! cancelled wizard never leaves a half-written config behind.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError};

#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error("cannot write {path}: {source}. Check that the folder exists and is writable")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A configuration that passed [`check`], ready to be written.
#[derive(Debug, Clone)]
pub struct Checked {
    /// As it will be loaded from the file.
    pub config: Config,
    text: String,
}

impl Checked {
    /// Writes it to `path`, atomically.
    pub fn write(&self, path: &Path) -> Result<(), SaveError> {
        write_atomic(path, self.text.as_bytes()).map_err(|source| SaveError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Validates `config` exactly as a load from `path` would (the text is re-read).
pub fn check(config: &Config, path: &Path) -> Result<Checked, SaveError> {
    let text = config.to_toml();
    let config = Config::parse(&text, path)?;
    Ok(Checked { config, text })
}

/// [`check`], then writes it to `path`. Returns the configuration as it will be loaded.
pub fn save(config: &Config, path: &Path) -> Result<Config, SaveError> {
    let checked = check(config, path)?;
    checked.write(path)?;
    Ok(checked.config)
}

/// Write temp + fsync + rename + fsync dir. The temporary file is removed on failure.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "postern.toml".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        #[cfg(unix)]
        std::fs::File::open(&dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
domains = ["office.example"]
[[queue_servers]]
host = "mail.isp.example"
[inbound]
listen = ["127.0.0.1:2525"]
deliver = "maildir:/tmp/postern-test-Maildir"
"#;

    #[test]
    fn save_writes_a_config_that_loads_back_equal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/postern.toml");
        let config = Config::parse(EXAMPLE, Path::new("example")).unwrap();

        let saved = save(&config, &path).unwrap();

        assert_eq!(saved, config);
        assert_eq!(Config::load(&path).unwrap(), config);
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("postern.toml")]);
    }

    #[test]
    fn an_outbound_section_from_the_wizard_without_a_spool_saves_with_the_default_spool() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("postern.toml");
        let text = format!(
            "state_dir = \"{}\"\n{EXAMPLE}[outbound]\nlisten = [\"127.0.0.1:2587\"]\n\
             smarthost = \"smtp://smtp.isp.example:587\"\n",
            dir.path().display()
        );
        let mut config = Config::parse(&text, Path::new("example")).unwrap();
        // The wizard's Outbound has no spool: the engine's form of it is the empty path.
        config.outbound.as_mut().unwrap().spool = PathBuf::new();

        let saved = save(&config, &path).unwrap();

        let written = std::fs::read_to_string(&path).unwrap();
        assert!(!written.contains("spool"), "{written}");
        assert_eq!(
            saved.outbound.unwrap().spool,
            dir.path().join("outbound"),
            "{written}"
        );
    }

    #[test]
    fn an_invalid_config_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("postern.toml");
        std::fs::write(&path, "old").unwrap();
        let mut config = Config::parse(EXAMPLE, Path::new("example")).unwrap();
        config.domains.clear();

        let result = save(&config, &path);

        assert!(matches!(result, Err(SaveError::Invalid(_))), "{result:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
    }
}
