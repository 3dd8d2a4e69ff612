//! The windows are another process, `postern-window` (WebKit), started on demand: it exits
//! when its last window closes, so WebKit's memory goes with it. A start while one runs is
//! handed to the running one (its single-instance plugin), which opens the window there.

use std::path::{Path, PathBuf};

use postern_engine::view::Window;

pub fn page(window: Window) -> &'static str {
    match window {
        Window::Dashboard => "dashboard",
        Window::Settings => "settings",
        Window::Wizard => "wizard",
        Window::Activity => "activity",
        Window::Mx => "mx",
        Window::Queue => "queue",
    }
}

/// `postern-window` beside this binary (the .deb and `cargo build` put both in one folder);
/// `POSTERN_WINDOW` overrides it.
fn window_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("POSTERN_WINDOW") {
        return path.into();
    }
    let name = format!("postern-window{}", std::env::consts::EXE_SUFFIX);
    match std::env::current_exe() {
        Ok(exe) => exe.with_file_name(name),
        Err(_) => name.into(),
    }
}

/// Starts `postern-window --page PAGE --config FILE --endpoint PATH` and reaps it when it
/// exits.
pub fn open(window: Window, config: &Path, endpoint: &Path) -> Result<(), String> {
    let binary = window_binary();
    let mut child = tokio::process::Command::new(&binary)
        .arg("--page")
        .arg(page(window))
        .arg("--config")
        .arg(config)
        .arg("--endpoint")
        .arg(endpoint)
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start the window process {}: {e}; reinstall Postern",
                binary.display()
            )
        })?;
    tokio::spawn(async move {
        match child.wait().await {
            Ok(status) if !status.success() => {
                tracing::warn!("the window process ended with {status}")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("cannot wait for the window process: {e}"),
        }
    });
    Ok(())
}
