/// Postern's own commands; each gets an `allow-<name>` permission that capabilities/ grants.
const COMMANDS: &[&str] = &[
    "get_status",
    "fetch_now",
    "pause",
    "resume",
    "load_config",
    "save_config",
    "set_secret",
    "probe_queue_server",
    "test_delivery",
    "recent_activity",
    "open_window",
    "check_mx",
    "check_reachability",
];

fn main() {
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .expect("tauri-build failed: check tauri.conf.json and capabilities/");
}
