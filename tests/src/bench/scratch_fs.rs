//! A fresh ext4 filesystem for the files a measurement writes: an image file made with
//! `mkfs.ext4` (default options, so with a journal, as Debian installs it), attached to a loop
//! device with direct I/O and mounted in a temporary directory. Unmounted, detached and removed
//! on drop.
//!
//! Why: what creating a file costs depends on the filesystem's recent past. On ext4 without a
//! journal (the root filesystem of some virtual machines, this one included) an inode freed in
//! the last one to five minutes is not reused, and every new file scans past all of them; with
//! the bench's own Postfix and earlier rows deleting thousands of files next door, `posternd`
//! spent 1.0–1.1 ms of kernel time per 20 KB message there, against 0.2–0.25 ms on a fresh
//! filesystem (`smtp-source -s 16 -m 3000 -l 20000`). A dedicated filesystem measures Postern,
//! not the leftovers of the runs before.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::fcntl::{FallocateFlags, fallocate};
use postern_tests::harness::process::output_within;
use postern_tests::harness::{HarnessError, Result};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

fn other(text: impl Into<String>) -> HarnessError {
    HarnessError::Other(text.into())
}

/// Runs a command to completion and returns its stdout; a failure carries its stderr.
fn run(program: &str, args: &[&str]) -> Result<String> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let out = output_within(&mut cmd, None, COMMAND_TIMEOUT)?;
    if !out.status.success() {
        return Err(other(format!(
            "{program} {}: {} ({})",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub struct ScratchFs {
    /// Holds the image and the mount point; removed (by its own drop) after the unmount.
    _dir: tempfile::TempDir,
    mount: PathBuf,
    device: String,
    mounted: bool,
}

impl ScratchFs {
    /// Makes and mounts a filesystem of `size_mib` MiB (root only: losetup and mount).
    pub fn create(size_mib: u64) -> Result<ScratchFs> {
        let dir = tempfile::Builder::new()
            .prefix("postern-bench-fs-")
            .tempdir()
            .map_err(|e| other(format!("create a temporary directory: {e}")))?;
        let image = dir.path().join("ext4.img");
        let file = std::fs::File::create(&image)
            .map_err(|e| other(format!("create {}: {e}", image.display())))?;
        // Allocated up front, so the loop device's writes do not allocate in the host filesystem.
        fallocate(
            &file,
            FallocateFlags::empty(),
            0,
            (size_mib * 1024 * 1024) as i64,
        )
        .map_err(|e| {
            other(format!(
                "allocate {size_mib} MiB for {}: {e}",
                image.display()
            ))
        })?;
        drop(file);
        let image_arg = image.to_string_lossy().into_owned();
        run("mkfs.ext4", &["-q", "-F", &image_arg])
            .map_err(|e| other(format!("{e} (package e2fsprogs)")))?;
        let device = run(
            "losetup",
            &["--find", "--show", "--direct-io=on", &image_arg],
        )
        .map_err(|e| other(format!("{e} (no loop devices here, or not root)")))?;
        let mount = dir.path().join("mnt");
        let mut fs = ScratchFs {
            _dir: dir,
            mount,
            device,
            mounted: false,
        };
        std::fs::create_dir(&fs.mount)
            .map_err(|e| other(format!("create {}: {e}", fs.mount.display())))?;
        let mount_arg = fs.mount.to_string_lossy().into_owned();
        run("mount", &[&fs.device, &mount_arg])?;
        fs.mounted = true;
        Ok(fs)
    }

    pub fn path(&self) -> &Path {
        &self.mount
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        "a fresh ext4 (mkfs.ext4 defaults, with a journal) on a loop device with direct I/O"
            .to_string()
    }
}

impl Drop for ScratchFs {
    fn drop(&mut self) {
        let mount = self.mount.to_string_lossy().into_owned();
        if self.mounted && run("umount", &[&mount]).is_err() {
            // Still busy (a process that has not exited yet): detach now, freed when idle.
            let _ = run("umount", &["--lazy", &mount]);
        }
        let _ = run("losetup", &["--detach", &self.device]);
    }
}

/// Where a row writes its files: a fresh [`ScratchFs`], or the system's temporary directory
/// when one cannot be made (the row's note then says why).
pub struct Place {
    _fs: Option<ScratchFs>,
    pub dir: PathBuf,
    /// For the row's note, e.g. "a fresh ext4 (...)".
    pub text: String,
}

impl Place {
    pub fn new(size_mib: u64) -> Place {
        match ScratchFs::create(size_mib) {
            Ok(fs) => Place {
                dir: fs.path().to_path_buf(),
                text: fs.describe(),
                _fs: Some(fs),
            },
            Err(e) => {
                let dir = std::env::temp_dir();
                Place {
                    text: format!(
                        "{} (a filesystem of its own could not be made: {e})",
                        dir.display()
                    ),
                    dir,
                    _fs: None,
                }
            }
        }
    }
}
