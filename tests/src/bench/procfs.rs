//! Memory and CPU time of a process from /proc/PID/status and /proc/PID/stat.

use std::process::Command;

use postern_tests::harness::{HarnessError, Result};

/// A `kB` field of /proc/PID/status (e.g. "VmRSS", "VmHWM"), in kB.
pub fn status_kb(pid: u32, field: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| HarnessError::Other(format!("read {path}: {e}")))?;
    parse_status_kb(&text, field)
        .ok_or_else(|| HarnessError::Other(format!("no {field} in {path}")))
}

fn parse_status_kb(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name == field).then(|| value.split_whitespace().next()?.parse().ok())?
    })
}

/// utime + stime of the process, in clock ticks (fields 14 and 15 of /proc/PID/stat).
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| HarnessError::Other(format!("read {path}: {e}")))?;
    parse_cpu_ticks(&text).ok_or_else(|| HarnessError::Other(format!("unexpected {path}: {text}")))
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name is in parentheses and may contain spaces: count fields after its ")".
    let (_, rest) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 on Linux when that fails).
pub fn ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_fields() {
        let text = "Name:\tposternd\nVmHWM:\t   12345 kB\nVmRSS:\t    6789 kB\n";

        assert_eq!(parse_status_kb(text, "VmRSS"), Some(6789));
        assert_eq!(parse_status_kb(text, "VmHWM"), Some(12345));
        assert_eq!(parse_status_kb(text, "VmSwap"), None);
    }

    #[test]
    fn reads_cpu_ticks_after_a_name_with_spaces() {
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 1 2 3";

        assert_eq!(parse_cpu_ticks(stat), Some(12));
    }

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();

        assert!(status_kb(pid, "VmRSS").is_ok_and(|kb| kb > 0));
        assert!(cpu_ticks(pid).is_ok());
    }
}
