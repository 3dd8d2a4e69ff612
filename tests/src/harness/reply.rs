//! One SMTP reply, as the harness's clients read it.

use std::fmt;

/// One SMTP reply: its code and its text lines (without the code and separator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// The text lines joined with '\n'.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// Whether an EHLO reply lists `keyword` (case-insensitive, arguments ignored), e.g. "ETRN".
    pub fn has_keyword(&self, keyword: &str) -> bool {
        self.lines.iter().skip(1).any(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|word| word.eq_ignore_ascii_case(keyword))
        })
    }

    /// 2xx or 3xx.
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.lines.join(" / "))
    }
}
