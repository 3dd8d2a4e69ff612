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
    "read_journal",
    "dashboard",
    "open_window",
    "check_mx",
    "check_reachability",
    "queue_list",
    "queue_action",
    "probe_smarthost",
    "starts_at_login",
    "set_start_at_login",
];

fn main() {
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .expect("tauri-build failed: check tauri.conf.json and capabilities/");
    pack_relative_relocations();
}

/// Links `postern-window` with packed relative relocations (DT_RELR): its ~1 MB of `.rela.dyn` shrinks
/// to a few KB, pages the loader otherwise reads at every start and that stay mapped while the
/// app idles in the tray. Needs glibc ≥ 2.36 where the binary runs, so only when the glibc it is
/// built against has it (Debian 12 and later).
fn pack_relative_relocations() {
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    let glibc = std::process::Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| {
            let (major, minor) = v.trim().strip_prefix("glibc ")?.split_once('.')?;
            Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?))
        });
    if linux_gnu && glibc.is_some_and(|v| v >= (2, 36)) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
