//! The human report: grouped by severity, errors first, with colour when asked for.

use std::fmt::Write;

use super::findings::{Report, Severity};

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";

fn style(sev: Severity) -> (&'static str, &'static str, &'static str) {
    match sev {
        Severity::Error => ("\x1b[1;31m", "✗", "Errors"),
        Severity::Warning => ("\x1b[1;33m", "!", "Warnings"),
        Severity::Info => ("\x1b[36m", "i", "Information"),
        Severity::Ok => ("\x1b[32m", "✓", "Fine"),
    }
}

impl Report {
    fn title(&self) -> String {
        match &self.backup_host {
            Some(ours) => format!("Backup MX check for {} (this office: {ours})", self.domain),
            None => format!("MX check for {}", self.domain),
        }
    }

    /// The report for people. `color` adds ANSI colours (only for a terminal, and not when
    /// NO_COLOR is set: the caller decides).
    pub fn render_human(&self, color: bool) -> String {
        let paint = |code: &str, text: &str| {
            if color {
                format!("{code}{text}{RESET}")
            } else {
                text.to_string()
            }
        };
        let count = |s: Severity| self.findings.iter().filter(|f| f.severity == s).count();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} — {} error(s), {} warning(s), {} note(s), {} fine",
            paint(BOLD, &self.title()),
            count(Severity::Error),
            count(Severity::Warning),
            count(Severity::Info),
            count(Severity::Ok),
        );
        if !self.complete {
            let _ = writeln!(
                out,
                "{}",
                paint(
                    style(Severity::Error).0,
                    "The check could not run completely: the results below say why."
                )
            );
        }
        for sev in [
            Severity::Error,
            Severity::Warning,
            Severity::Info,
            Severity::Ok,
        ] {
            let group: Vec<_> = self.findings.iter().filter(|f| f.severity == sev).collect();
            if group.is_empty() {
                continue;
            }
            let (code, mark, title) = style(sev);
            let _ = writeln!(out, "\n{}", paint(code, title));
            for f in group {
                let _ = writeln!(
                    out,
                    "  {} {}  [{}]",
                    paint(code, mark),
                    paint(BOLD, &f.subject),
                    f.id
                );
                let _ = writeln!(out, "      {}", f.evidence);
                if let Some(fix) = &f.fix
                    && sev != Severity::Ok
                {
                    let _ = writeln!(out, "      {} {fix}", paint(BOLD, "Fix:"));
                }
            }
        }
        if !self.mx.is_empty() {
            let _ = writeln!(out, "\n{}", paint(BOLD, "MX records"));
            let office_at = self
                .mx
                .iter()
                .position(|m| self.office_host.as_deref() == Some(m.host.as_str()));
            for (i, m) in self.mx.iter().enumerate() {
                let addrs: Vec<String> = m.addresses.iter().map(|a| a.to_string()).collect();
                let office = if office_at == Some(i) {
                    "  (office)"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "  {:>5}  {}  {}{office}",
                    m.preference,
                    m.host,
                    if addrs.is_empty() {
                        "(no address)".to_string()
                    } else {
                        addrs.join(", ")
                    }
                );
            }
        }
        if let Some(p) = self.recommended_protocol {
            let name = serde_json::to_value(p)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "\n{} protocol = \"{name}\"",
                paint(BOLD, "Recommended:")
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mx::{Finding, MxRecordView};

    fn report() -> Report {
        let mut r = Report::new("office.test");
        r.mx.push(MxRecordView {
            preference: 10,
            host: "mx1.office.test".into(),
            addresses: vec!["192.0.2.1".parse().unwrap()],
        });
        r.office_host = Some("mx1.office.test".into());
        r.push(Finding::new(
            "mx.found",
            Severity::Ok,
            "office.test",
            "MX records: 10 mx1.office.test",
        ));
        r.push(
            Finding::new("pref.equal", Severity::Error, "isp.test", "round robin")
                .fix("Give isp.test a higher value"),
        );
        r
    }

    #[test]
    fn errors_come_first_with_their_fix() {
        let text = report().render_human(false);

        let errors = text.find("Errors").unwrap();
        let fine = text.find("Fine").unwrap();
        assert!(errors < fine, "{text}");
        assert!(text.contains("  ✗ isp.test  [pref.equal]\n      round robin\n      Fix: Give isp.test a higher value\n"), "{text}");
        assert!(
            text.contains("10  mx1.office.test  192.0.2.1  (office)"),
            "{text}"
        );
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn colour_only_when_asked() {
        assert!(report().render_human(true).contains("\x1b[1;31m"));
    }
}
