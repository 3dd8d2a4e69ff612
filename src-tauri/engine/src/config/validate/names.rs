//! Domains and host names: `domains`, and the DNS-name rules every host key uses.

use std::net::IpAddr;

use toml::Spanned;

use super::values::R;
use crate::config::report::{Problem, Src};

pub(super) fn domains(raw: Option<Spanned<Vec<Spanned<String>>>>, src: Src<'_>) -> R<Vec<String>> {
    const FIX: &str = "list the office's mail domains at the top of the file, before any [section]: \
                       domains = [\"office.example\"]";
    let Some(raw) = raw else {
        return Err(src.whole(Problem::new(
            "there is no `domains` list: Postern needs to know which mail domains to fetch",
            FIX,
        )));
    };
    if raw.get_ref().is_empty() {
        return Err(src.at(
            raw.span(),
            Problem::new("`domains` is empty: there is no mail domain to fetch", FIX),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for d in raw.into_inner() {
        let name = dns_name(d.get_ref(), 2)
            .map_err(|why| src.at(d.span(), domain_problem(d.get_ref(), &why)))?;
        if out.contains(&name) {
            return Err(src.at(
                d.span(),
                Problem::new(
                    format!("the domain \"{name}\" is listed twice in `domains`"),
                    "remove the second one",
                ),
            ));
        }
        out.push(name);
    }
    Ok(out)
}

pub(super) fn domain_problem(input: &str, why: &str) -> Problem {
    Problem::new(
        format!("\"{input}\" is not a valid domain name: {why}"),
        "write the domain as it appears in e-mail addresses after the @, e.g. \"office.example\"",
    )
}

/// A DNS name in lower-case ASCII: trailing dot stripped, IDNs converted to their A-label form.
/// The reason for a refusal is returned in plain words.
pub(in crate::config) fn dns_name(input: &str, min_labels: usize) -> Result<String, String> {
    let trimmed = input.strip_suffix('.').unwrap_or(input);
    if trimmed.is_empty() {
        return Err("it is empty".into());
    }
    if trimmed.chars().any(char::is_whitespace) {
        return Err("it contains a space".into());
    }
    let ascii = if trimmed.is_ascii() {
        trimmed.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(trimmed).map_err(|_| {
            "it is not a valid international domain name; write it in its ASCII form \
             (\"xn--...\", as your registrar shows it)"
                .to_string()
        })?
    };
    if ascii.len() > 253 {
        return Err("it is longer than 253 characters".into());
    }
    let labels: Vec<&str> = ascii.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return Err("it has an empty part between two dots".into());
        }
        if label.len() > 63 {
            return Err(format!("the part \"{label}\" is longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(format!(
                "'{c}' is not allowed (only letters, digits, '-' and dots)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("the part \"{label}\" starts or ends with '-'"));
        }
    }
    if labels.len() < min_labels {
        return Err("a domain has at least two parts, like \"office.example\"".into());
    }
    if labels.len() > 1
        && labels
            .last()
            .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err("its last part is a number, so it looks like an IP address".into());
    }
    Ok(ascii)
}

/// A host name (one label is enough, e.g. `localhost`) or an IP literal (brackets optional).
pub(super) fn host(input: &str) -> Result<String, String> {
    let bare = input
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(input);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    if bare.contains(':') {
        return Err("it is neither a host name nor an IP address".into());
    }
    dns_name(bare, 1)
}
