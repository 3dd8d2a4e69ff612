//! Reading a Maildir that Postern delivered into.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::Result;
use super::wait::poll_until;

fn message_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = ["new", "cur"]
        .iter()
        .filter_map(|sub| std::fs::read_dir(dir.join(sub)).ok())
        .flatten()
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .map(|entry| {
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (modified, entry.path())
        })
        .collect();
    files.sort();
    files.into_iter().map(|(_, path)| path).collect()
}

/// The contents of every message in `dir/new` and `dir/cur` (not `tmp`), oldest first. A missing
/// Maildir reads as empty; a file that vanishes while being read (moved from new/ to cur/) is
/// skipped.
pub fn read_maildir(dir: &Path) -> Vec<Vec<u8>> {
    message_files(dir)
        .iter()
        .filter_map(|path| std::fs::read(path).ok())
        .collect()
}

/// How many messages are in `dir/new` and `dir/cur`.
pub fn count(dir: &Path) -> usize {
    message_files(dir).len()
}

/// Waits until at least `n` messages are in the Maildir, then returns all of them.
pub fn wait_for_maildir(dir: &Path, n: usize, timeout: Duration) -> Result<Vec<Vec<u8>>> {
    poll_until(
        format!("{n} message(s) in Maildir {}", dir.display()),
        timeout,
        || (count(dir) >= n).then(|| read_maildir(dir)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_new_and_cur_but_not_tmp() {
        let dir = tempfile::tempdir().expect("temp dir");
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
            std::fs::write(dir.path().join(sub).join("1.x"), sub).expect("write");
        }

        let mut messages = read_maildir(dir.path());
        messages.sort();

        assert_eq!(messages, vec![b"cur".to_vec(), b"new".to_vec()]);
        assert_eq!(count(dir.path()), 2);
        assert!(wait_for_maildir(dir.path(), 2, Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn missing_maildir_is_empty() {
        assert_eq!(count(Path::new("/nonexistent/maildir")), 0);
    }
}
