//! Every command the app registers must also be declared to tauri-build (build.rs) and granted
//! to the windows (capabilities/default.json); otherwise the UI gets "<command> not allowed"
//! at run time, which no mock-runtime test sees.

use std::collections::BTreeSet;

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).map(|i| i + start.len()).unwrap_or(0);
    let to = text[from..].find(end).map_or(text.len(), |i| from + i);
    &text[from..to]
}

fn registered_commands() -> BTreeSet<String> {
    let lib = include_str!("../src/lib.rs");
    between(lib, "generate_handler![", "]")
        .split(',')
        .filter_map(|entry| entry.trim().strip_prefix("commands::"))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_registered_command_is_declared_and_granted() {
    let build = include_str!("../build.rs");
    let declared: BTreeSet<String> = between(build, "const COMMANDS: &[&str] = &[", "];")
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let capability: serde_json::Value =
        serde_json::from_str(include_str!("../capabilities/default.json")).unwrap();
    let granted: BTreeSet<String> = capability["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str()?.strip_prefix("allow-"))
        .map(|p| p.replace('-', "_"))
        .collect();

    let registered = registered_commands();

    assert!(registered.len() >= 10, "parsed {registered:?}");
    assert_eq!(
        registered, declared,
        "build.rs COMMANDS differ from generate_handler!"
    );
    let missing: Vec<_> = registered.difference(&granted).collect();
    assert!(
        missing.is_empty(),
        "not granted in capabilities/default.json: {missing:?}"
    );
}
