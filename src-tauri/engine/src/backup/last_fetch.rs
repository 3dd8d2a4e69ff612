//! When each neighbour last asked for its mail, kept in the state folder so that the tray's
//! "fetched 2 h ago" and the dashboard survive a restart. Losing the file costs only that line,
//! so it is replaced by a rename without an fsync, and a damaged one is read as empty.

use std::collections::HashMap;
use std::path::Path;

/// The file's name in the state folder.
pub const FILE: &str = "backup-last-fetch.json";

/// When and how the neighbour last asked for a domain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LastFetch {
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// `ETRN from 192.0.2.7`, `ATRN by neighbour`.
    pub by: String,
}

/// The saved fetches per domain; empty when there is no file yet or it cannot be read.
pub fn load(path: &Path) -> HashMap<String, LastFetch> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return HashMap::new(),
        Err(e) => {
            tracing::warn!(
                "cannot read {}: {e}; the last fetch times start empty",
                path.display()
            );
            return HashMap::new();
        }
    };
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        tracing::warn!(
            "{} is damaged ({e}); the last fetch times start empty and the file is rewritten \
             on the next fetch",
            path.display()
        );
        HashMap::new()
    })
}

/// Replaces the file with `fetches` (a temporary file renamed over it).
pub fn save(path: &Path, fetches: &HashMap<String, LastFetch>) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(fetches).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fetches_come_back_after_a_save_and_a_damaged_file_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        assert!(load(&path).is_empty());

        let mut fetches = HashMap::new();
        fetches.insert(
            "neighbour.example".to_string(),
            LastFetch {
                at: 1_796_000_000,
                by: "ETRN from 192.0.2.7".into(),
            },
        );
        save(&path, &fetches).unwrap();
        assert_eq!(load(&path), fetches);

        std::fs::write(&path, b"{\"neighbour.example\": {\"at\": ").unwrap();
        assert!(load(&path).is_empty());
    }
}
