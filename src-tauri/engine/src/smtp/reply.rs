//! One SMTP reply as a client reads it: the code and the text of each line.

use serde::{Deserialize, Serialize};

/// One SMTP reply: the code and the text of each line (without the code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// The reply's text, lines joined with " / ".
    pub fn text(&self) -> String {
        self.lines.join(" / ")
    }
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }
    /// The text with an RFC 3463 enhanced status code prefix (`4.7.1 `) removed.
    pub fn text_without_status(&self) -> String {
        let text = self.text();
        match text.split_once(' ') {
            Some((first, rest)) if is_enhanced_status(first) => rest.to_string(),
            _ => text,
        }
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.text())
    }
}

fn is_enhanced_status(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_status_is_removed_from_the_text() {
        let reply = Reply {
            code: 454,
            lines: vec!["4.7.1 Relay access denied".into(), "try later".into()],
        };
        assert_eq!(reply.text(), "4.7.1 Relay access denied / try later");
        assert_eq!(
            reply.text_without_status(),
            "Relay access denied / try later"
        );
        assert!(reply.is_transient());
        let plain = Reply {
            code: 250,
            lines: vec!["4.7 is not a status".into()],
        };
        assert_eq!(plain.text_without_status(), "4.7 is not a status");
        assert!(plain.is_positive());
    }
}
