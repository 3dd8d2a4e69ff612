//! The UI's TypeScript types for the config, the status and the events
//! (`ui/src/lib/generated/engine.ts`), generated from the Rust types with ts-rs, so the two
//! cannot drift apart. The test fails when the committed file differs from what the types give
//! now; `UPDATE_TS_BINDINGS=1 cargo test -p postern-engine --lib bindings` writes it anew.

use std::path::PathBuf;

use ts_rs::TS;

use crate::{config, dashboard, events, journal, link, outcome, view};

const REGENERATE: &str = "UPDATE_TS_BINDINGS=1 cargo test -p postern-engine --lib bindings";

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../ui/src/lib/generated/engine.ts")
}

fn decl<T: TS>(cfg: &ts_rs::Config) -> String {
    format!("export {}\n", T::decl(cfg))
}

/// Every type the UI exchanges with the engine, each once, in one file.
fn generate() -> String {
    // Counts and sizes stay far below 2^53: plain numbers, as serde_json writes them.
    let cfg = ts_rs::Config::new().with_large_int("number");
    let decls = [
        decl::<config::Config>(&cfg),
        decl::<config::QueueServer>(&cfg),
        decl::<config::Protocol>(&cfg),
        decl::<config::TlsMode>(&cfg),
        decl::<config::Inbound>(&cfg),
        decl::<config::Outbound>(&cfg),
        decl::<config::Link>(&cfg),
        decl::<config::Dns>(&cfg),
        decl::<config::Desktop>(&cfg),
        decl::<config::Journal>(&cfg),
        decl::<config::BackupFor>(&cfg),
        decl::<config::Backup>(&cfg),
        decl::<config::Release>(&cfg),
        decl::<view::StatusView>(&cfg),
        decl::<view::Problem>(&cfg),
        decl::<view::TrayIcon>(&cfg),
        decl::<view::Window>(&cfg),
        decl::<events::Event>(&cfg),
        decl::<outcome::Outcome>(&cfg),
        decl::<outcome::Disposition>(&cfg),
        decl::<link::LinkState>(&cfg),
        decl::<journal::Kind>(&cfg),
        decl::<journal::Query>(&cfg),
        decl::<journal::Entry>(&cfg),
        decl::<journal::Page>(&cfg),
        decl::<journal::Stats>(&cfg),
        decl::<journal::stats::Bucket>(&cfg),
        decl::<dashboard::DashboardView>(&cfg),
        decl::<dashboard::ServerView>(&cfg),
        decl::<dashboard::Attention>(&cfg),
        decl::<crate::backup::server::HeldStatus>(&cfg),
        decl::<journal::stats::DequeueWait>(&cfg),
    ];
    format!(
        "// Generated from the engine's Rust types by src-tauri/engine/src/bindings.rs; do not edit.\n\
         // Regenerate: {REGENERATE}\n\n{}",
        decls.join("\n")
    )
}

#[test]
#[allow(clippy::unwrap_used)]
fn bindings_match_the_rust_types() {
    let fresh = generate();
    let path = committed_path();
    if std::env::var_os("UPDATE_TS_BINDINGS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &fresh).unwrap();
        return;
    }
    // Written to a temporary folder too, so a failure can be diffed by hand.
    let dir = tempfile::tempdir().unwrap();
    let fresh_path = dir.path().join("engine.ts");
    std::fs::write(&fresh_path, &fresh).unwrap();
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{} is not what the Rust types give now (a serde type changed?). Regenerate it with\n  \
         {REGENERATE}\nand commit it. What they give now:\n{fresh}",
        path.display()
    );
}
