//! Start at login: this binary with `--autostart` (what tauri-plugin-autostart wraps,
//! `auto-launch`, under the name the plugin used, so an entry made before stays the same).

use auto_launch::{AutoLaunch, AutoLaunchBuilder};

fn launcher() -> Result<AutoLaunch, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    AutoLaunchBuilder::new()
        .set_app_name("Postern")
        .set_app_path(&exe.display().to_string())
        .set_args(&["--autostart"])
        .set_use_launch_agent(true)
        .build()
        .map_err(|e| e.to_string())
}

/// Reads start at login, or changes it first (`Some`).
pub fn set(enable: Option<bool>) -> Result<bool, String> {
    let launcher = launcher()?;
    match enable {
        Some(true) => launcher.enable().map_err(|e| e.to_string())?,
        Some(false) => launcher.disable().map_err(|e| e.to_string())?,
        None => {}
    }
    launcher.is_enabled().map_err(|e| e.to_string())
}
