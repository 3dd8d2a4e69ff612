//! A description of the machine the numbers come from.

use std::path::Path;
use std::process::Command;

fn first_line_with(path: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let (name, value) = line.split_once([':', '='])?;
        (name.trim() == key).then(|| value.trim().trim_matches('"').to_string())
    })
}

fn command(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Lines of `key: value` describing CPU, memory, OS, kernel, the file system the Maildirs and
/// Postfix queues live on (the temporary directory), and the versions compared.
pub fn describe(posternd: &Path) -> Vec<(String, String)> {
    let unknown = || "unknown".to_string();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| unknown());
    let tmp = std::env::temp_dir();
    let tmp_fs = command(
        "df",
        &["--output=fstype,source", &tmp.display().to_string()],
    )
    .and_then(|t| {
        t.lines()
            .nth(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" on "))
    })
    .unwrap_or_else(unknown);
    vec![
        (
            "CPU".into(),
            format!(
                "{} ({cpus} CPUs available)",
                first_line_with("/proc/cpuinfo", "model name").unwrap_or_else(unknown)
            ),
        ),
        (
            "Memory".into(),
            first_line_with("/proc/meminfo", "MemTotal").unwrap_or_else(unknown),
        ),
        (
            "OS".into(),
            first_line_with("/etc/os-release", "PRETTY_NAME").unwrap_or_else(unknown),
        ),
        (
            "Kernel".into(),
            command("uname", &["-sr"]).unwrap_or_else(unknown),
        ),
        (
            "Virtualisation".into(),
            command("systemd-detect-virt", &[]).unwrap_or_else(unknown),
        ),
        (
            "Maildir / queue file system".into(),
            format!("{} ({tmp_fs})", tmp.display()),
        ),
        (
            "Postfix".into(),
            command("postconf", &["-dh", "mail_version"]).unwrap_or_else(unknown),
        ),
        (
            "posternd".into(),
            format!(
                "{} (release build), commit {}",
                posternd.display(),
                command("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_else(unknown)
            ),
        ),
        (
            "Desktop app libraries".into(),
            format!(
                "WebKitGTK {}, GTK {} (rows 6, 7b run under Xvfb, software rendering)",
                command(
                    "dpkg-query",
                    &["-W", "-f=${Version}", "libwebkit2gtk-4.1-0"]
                )
                .unwrap_or_else(unknown),
                command("dpkg-query", &["-W", "-f=${Version}", "libgtk-3-0"])
                    .unwrap_or_else(unknown)
            ),
        ),
        (
            "Date".into(),
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        ),
    ]
}
