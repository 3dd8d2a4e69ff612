//! A small file system of its own (tmpfs with a size limit), for disk-full tests: fill it up and
//! see what the server answers. Root only; unmounted on drop.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::error::{HarnessError, IoContext, Result};
use super::preconditions::require_root;
use super::process::run;

const MOUNT_TIMEOUT: Duration = Duration::from_secs(20);

/// A tmpfs of `size` bytes mounted on a fresh temporary directory. Declare it before anything
/// that writes into it (a `Posternd`), so that it is dropped (unmounted) last.
pub struct SmallFs {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl SmallFs {
    /// `mount -t tmpfs -o size=SIZE,mode=0755` on a new directory.
    pub fn tmpfs(size: u64) -> Result<Self> {
        require_root().map_err(HarnessError::Other)?;
        let dir = tempfile::Builder::new()
            .prefix("postern-smallfs-")
            .tempdir()
            .context(|| "create mount point".into())?;
        let mut mount = Command::new("mount");
        mount
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path());
        run(&mut mount, MOUNT_TIMEOUT)?;
        Ok(Self { dir, mounted: true })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes still free on it (statvfs).
    pub fn available(&self) -> Result<u64> {
        let stat = nix::sys::statvfs::statvfs(self.path())
            .map_err(|e| HarnessError::Other(format!("statvfs {}: {e}", self.path().display())))?;
        Ok(stat.blocks_available() * stat.fragment_size())
    }

    /// Writes a file of zeros at `path` (inside the mount) until `leave` bytes remain free or the
    /// file system is full. Returns how many bytes it wrote.
    pub fn fill(&self, path: &Path, leave: u64) -> Result<u64> {
        use std::io::Write;
        let mut file =
            std::fs::File::create(path).context(|| format!("create {}", path.display()))?;
        let chunk = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            let free = self.available()?;
            if free <= leave {
                break;
            }
            let n = usize::try_from((free - leave).min(chunk.len() as u64)).unwrap_or(chunk.len());
            match file.write_all(&chunk[..n]) {
                Ok(()) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => {
                    return Err(HarnessError::Io {
                        what: format!("fill {}", path.display()),
                        source: e,
                    });
                }
            }
        }
        file.sync_all()
            .context(|| format!("fsync {}", path.display()))?;
        Ok(written)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        if !self.mounted {
            return;
        }
        let path = self.dir.path().to_path_buf();
        if run(Command::new("umount").arg(&path), MOUNT_TIMEOUT).is_err() {
            // Still busy (a process we started has not exited yet): detach it, the kernel frees it
            // once the last user is gone.
            let _ = run(Command::new("umount").arg("-l").arg(&path), MOUNT_TIMEOUT);
        }
        self.mounted = false;
    }
}
