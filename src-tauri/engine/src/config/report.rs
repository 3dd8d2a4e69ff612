//! Turning byte spans and serde's messages into [`ConfigError::Invalid`] with a line, a column,
//! what is wrong and what to do.

use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::ConfigError;
use super::keys;

/// What is wrong and how to fix it, before it is placed in the file.
#[derive(Debug)]
pub(super) struct Problem {
    pub message: String,
    pub fix: String,
}

impl Problem {
    pub fn new(message: impl Into<String>, fix: impl Into<String>) -> Problem {
        Problem {
            message: message.into(),
            fix: fix.into(),
        }
    }
}

/// The file being checked.
#[derive(Clone, Copy)]
pub(super) struct Src<'a> {
    pub text: &'a str,
    pub path: &'a Path,
}

impl Src<'_> {
    /// `problem` located at the start of `span`.
    pub fn at(&self, span: Range<usize>, problem: Problem) -> ConfigError {
        let (line, column) = line_col(self.text, span.start);
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line,
            column,
            // One line: the CLI prints the error as its one-line reason.
            message: problem.message.replace('\n', " "),
            fix: Some(problem.fix.replace('\n', " ")),
        }
    }

    /// A problem with the file as a whole (something missing): reported at line 1, column 1.
    pub fn whole(&self, problem: Problem) -> ConfigError {
        self.at(0..0, problem)
    }

    /// A TOML syntax error.
    pub fn syntax(&self, err: &toml::de::Error) -> ConfigError {
        let message = err.message().trim().trim_end_matches('.').to_string();
        let fix = if message.contains("duplicate key") {
            "each key may appear only once per table: delete or rename one of the two"
        } else {
            "check the TOML syntax here: text goes in double quotes (\"...\"), lists are written \
             [\"a\", \"b\"], numbers and true/false have no quotes, table names go in [brackets]"
        };
        self.at(
            err.span().unwrap_or(0..0),
            Problem::new(format!("this is not valid TOML: {message}"), fix),
        )
    }

    /// A serde error from deserializing the raw structs (unknown key, wrong type, bad choice).
    pub fn serde(&self, err: &toml::de::Error) -> ConfigError {
        let span = err.span().unwrap_or(0..0);
        let path = DeTable::parse(self.text)
            .map(|doc| key_path(doc.get_ref(), span.start))
            .unwrap_or_default();
        self.at(span, explain_serde(err.message(), &path))
    }
}

/// 1-based line and column (in characters) of byte `offset`.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The keys leading to the value or key at `offset` (array indices are skipped).
fn key_path(table: &DeTable<'_>, offset: usize) -> Vec<String> {
    for (key, value) in table.iter() {
        if key.span().contains(&offset) {
            return vec![key.get_ref().to_string()];
        }
        if let Some(mut inner) = value_path(value.get_ref(), offset) {
            inner.insert(0, key.get_ref().to_string());
            return inner;
        }
        if value.span().contains(&offset) {
            return vec![key.get_ref().to_string()];
        }
    }
    Vec::new()
}

fn value_path(value: &DeValue<'_>, offset: usize) -> Option<Vec<String>> {
    match value {
        DeValue::Table(t) => Some(key_path(t, offset)).filter(|p| !p.is_empty()),
        DeValue::Array(items) => items
            .iter()
            .find_map(|item| value_path(item.get_ref(), offset)),
        _ => None,
    }
}

/// `[[queue_servers]]`, `[inbound]` or "the top level".
fn section_name(section: &str) -> String {
    match section {
        "" => "the top level of the file".to_string(),
        "queue_servers" => "[[queue_servers]]".to_string(),
        s => format!("[{s}]"),
    }
}

/// The names between backquotes in serde's "expected one of `a`, `b`" tail.
fn backquoted(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// The valid name closest to `wrong`, if it is close enough to be a likely typo.
pub(super) fn nearest<'a>(wrong: &str, valid: &[&'a str]) -> Option<&'a str> {
    let wrong = wrong.to_ascii_lowercase();
    valid
        .iter()
        .map(|v| (strsim::jaro_winkler(&wrong, v), *v))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, v)| v)
}

fn explain_serde(message: &str, path: &[String]) -> Problem {
    let (section, key) = match path {
        [] => ("", ""),
        [key] => ("", key.as_str()),
        [section, .., key] => (section.as_str(), key.as_str()),
    };
    let doc = keys::lookup(section, key);

    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (wrong, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let valid = backquoted(expected);
        let what = if section.is_empty() {
            "key or section"
        } else {
            "key"
        };
        let problem = format!("unknown {what} `{wrong}` in {}", section_name(section));
        let list = if valid.is_empty() {
            "this table has no keys".to_string()
        } else {
            format!("the keys allowed here are {}", valid.join(", "))
        };
        let fix = if let Some(near) = nearest(wrong, &valid) {
            format!("did you mean `{near}`? ({list})")
        } else if !section.is_empty() && keys::lookup("", wrong).is_some() {
            format!(
                "`{wrong}` belongs at the top of the file, before the first [section]: move the \
                 line up (in TOML every line after a [section] header belongs to that section)"
            )
        } else if let Some(home) = keys::sections_with(wrong, section).first() {
            format!(
                "`{wrong}` belongs in {}: move the line there ({list})",
                section_name(home)
            )
        } else {
            format!("remove it or correct its name: {list}")
        };
        return Problem::new(problem, fix);
    }

    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (wrong, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let valid = backquoted(expected);
        let quoted: Vec<String> = valid.iter().map(|v| format!("\"{v}\"")).collect();
        let problem = format!("`{key}` cannot be \"{wrong}\"");
        let fix = match nearest(wrong, &valid) {
            Some(near) => format!(
                "did you mean `{key} = \"{near}\"`? (the choices are {})",
                quoted.join(", ")
            ),
            None => format!("write one of {}", quoted.join(", ")),
        };
        return Problem::new(problem, fix);
    }

    let found = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|rest| rest.split_once(", expected"))
        .map(|(found, _)| match found {
            "map" => "a table".to_string(),
            "sequence" => "a list".to_string(),
            other => other.to_string(),
        });
    match (doc, found) {
        (Some(doc), Some(found)) => Problem::new(
            format!("`{key}` must be {}, not {found}", doc.expects),
            format!("write it like this: {}", doc.example),
        ),
        (Some(doc), None) => Problem::new(
            format!("`{key}` must be {}", doc.expects),
            format!("write it like this: {}", doc.example),
        ),
        (None, _) => Problem::new(
            message.trim().to_string(),
            "see docs/configuration.md for the keys and their values",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        // Arrange
        let text = "a = 1\nbé = \"x\"\n";

        // Act
        let start = line_col(text, 0);
        let after_accent = line_col(text, 13);

        // Assert
        assert_eq!(start, (1, 1));
        assert_eq!(after_accent, (2, 7));
    }

    #[test]
    fn nearest_finds_typos_only() {
        // Arrange
        let valid = ["host", "port", "protocol", "tls"];

        // Act / Assert
        assert_eq!(nearest("protocl", &valid), Some("protocol"));
        assert_eq!(nearest("PORT", &valid), Some("port"));
        assert_eq!(nearest("smarthost", &valid), None);
    }
}
