//! Where the control endpoint of a config file lives, and the folder that guards it.

use std::path::{Path, PathBuf};

/// The endpoint for `config_file`: `<runtime folder>/postern/<hash of the file's path>.sock`.
/// The runtime folder is `$XDG_RUNTIME_DIR` (Linux), else a per-user folder in the temporary
/// folder. On Windows the same name is a named pipe.
pub fn endpoint_path(config_file: &Path) -> PathBuf {
    let canonical = std::fs::canonicalize(config_file).unwrap_or_else(|_| config_file.into());
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_os_str().as_encoded_bytes(),
    );
    let name: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    runtime_folder().join(format!("{name}.sock"))
}

#[cfg(unix)]
fn runtime_folder() -> PathBuf {
    match dirs::runtime_dir() {
        Some(dir) => dir.join("postern"),
        None => std::env::temp_dir().join(format!("postern-{}", nix::unistd::getuid())),
    }
}

#[cfg(not(unix))]
fn runtime_folder() -> PathBuf {
    dirs::data_local_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join(crate::BUNDLE_ID)
        .join("control")
}

/// Creates the endpoint's folder 0700, or checks that an existing one is ours and private:
/// the folder, not only the socket's mode, is what keeps other users out.
#[cfg(unix)]
pub(super) fn prepare_folder(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() || meta.uid() != nix::unistd::getuid().as_raw() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a folder of this user: remove it, or set XDG_RUNTIME_DIR",
                dir.display()
            ),
        ));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(not(unix))]
pub(super) fn prepare_folder(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// The name `interprocess` knows the endpoint by.
pub(super) fn socket_name(path: &Path) -> std::io::Result<interprocess::local_socket::Name<'_>> {
    use interprocess::local_socket::prelude::*;
    #[cfg(unix)]
    {
        path.to_fs_name::<interprocess::local_socket::GenericFilePath>()
    }
    #[cfg(not(unix))]
    {
        let file = path.file_name().unwrap_or(path.as_os_str());
        let mut name = std::ffi::OsString::from("postern-");
        name.push(file);
        name.to_ns_name::<interprocess::local_socket::GenericNamespaced>()
            .map(|n| n.into_owned())
    }
}
