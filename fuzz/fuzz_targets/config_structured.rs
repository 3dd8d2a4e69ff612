//! The config parser fed TOML built from the real tables and keys, with values from a palette
//! of near-valid ones and arbitrary ones, so the fuzzer gets past the syntax and the unknown-key
//! checks into validation.
#![no_main]

use std::fmt::Write;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

const TABLES: &[(&str, &[&str])] = &[
    ("", &["domains"]),
    (
        "[[queue_servers]]",
        &[
            "host",
            "port",
            "protocol",
            "tls",
            "node",
            "username",
            "tls_ca",
            "tls_fingerprint",
            "allow_plaintext_auth",
            "allow_insecure_turn",
            "timeout",
        ],
    ),
    (
        "[inbound]",
        &[
            "listen",
            "deliver",
            "hostname",
            "max_message_size",
            "max_connections",
            "idle_timeout",
        ],
    ),
    (
        "[outbound]",
        &[
            "listen",
            "allow",
            "smarthost",
            "smarthost_tls",
            "smarthost_username",
        ],
    ),
    (
        "[link]",
        &["probe", "refetch_every", "connect_back_timeout"],
    ),
    ("[dns]", &["nameservers"]),
    ("[desktop]", &["notifications"]),
];

const WORDS: &[&str] = &[
    "",
    "office.example",
    "Office.Example.",
    "bücher.example",
    "xn--bcher-kva.example",
    "-bad-.example",
    "mail.isp.example",
    "mail.isp.example:2525",
    "[2001:db8::1]:25",
    "127.0.0.1",
    "0.0.0.0:2525",
    "[::]:25",
    "10.0.0.0/8",
    "192.168.1.0/24",
    "maildir:/srv/mail/Maildir",
    "maildir:",
    "maildir:relative",
    "smtp://192.168.1.10:25",
    "smtp://mail.office.example",
    "smtp://[::1]:0",
    "smtps://smart.isp.example:465",
    "smart.isp.example:587",
    "etrn",
    "atrn",
    "turn",
    "required",
    "opportunistic",
    "off",
    "15m",
    "30s",
    "0s",
    "1h 30m",
    "999999999999h",
    "50M",
    "1G",
    "10K",
    "0",
    "-1",
    "sha256:",
    "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    "sha256:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff",
    "/etc/ssl/isp-ca.pem",
    "office",
    "user@isp.example",
    "tcp:mail.isp.example:25",
    "\u{e9}\u{301}",
    "\0",
];

#[derive(Arbitrary, Debug)]
enum Text {
    Word(u8),
    Raw(String),
    Joined(u8, u8),
}

#[derive(Arbitrary, Debug)]
enum Value {
    Text(Text),
    Int(i64),
    SmallInt(u16),
    Bool(bool),
    Float(f64),
    List(Vec<Text>),
    EmptyTable,
}

#[derive(Arbitrary, Debug)]
enum Key {
    /// The n-th key of the table.
    Known(u8),
    /// A key of another table, or a made-up one.
    Other(String),
}

#[derive(Arbitrary, Debug)]
struct Entry {
    key: Key,
    value: Value,
}

#[derive(Arbitrary, Debug)]
struct Table {
    /// Which table (index into TABLES); out of range: a made-up header.
    which: u8,
    entries: Vec<Entry>,
}

#[derive(Arbitrary, Debug)]
struct Doc {
    top: Vec<Entry>,
    tables: Vec<Table>,
}

fn text(t: &Text) -> String {
    match t {
        Text::Word(i) => WORDS[*i as usize % WORDS.len()].to_string(),
        Text::Raw(s) => s.clone(),
        Text::Joined(a, b) => format!(
            "{}{}",
            WORDS[*a as usize % WORDS.len()],
            WORDS[*b as usize % WORDS.len()]
        ),
    }
}

/// A TOML basic string.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A bare key when it can be one, else a quoted key.
fn key(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        s.to_string()
    } else {
        quoted(s)
    }
}

fn value(v: &Value) -> String {
    match v {
        Value::Text(t) => quoted(&text(t)),
        Value::Int(i) => i.to_string(),
        Value::SmallInt(i) => i.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Float(f) if f.is_finite() => format!("{f:?}"),
        Value::Float(_) => "nan".into(),
        Value::List(items) => {
            let items: Vec<String> = items.iter().map(|t| quoted(&text(t))).collect();
            format!("[{}]", items.join(", "))
        }
        Value::EmptyTable => "{}".into(),
    }
}

fn entries(out: &mut String, keys: &[&str], entries: &[Entry]) {
    for e in entries {
        let k = match &e.key {
            Key::Known(i) if !keys.is_empty() => keys[*i as usize % keys.len()].to_string(),
            Key::Known(_) => "domains".to_string(),
            Key::Other(s) => s.clone(),
        };
        let _ = writeln!(out, "{} = {}", key(&k), value(&e.value));
    }
}

fuzz_target!(|doc: Doc| {
    let mut out = String::new();
    entries(&mut out, TABLES[0].1, &doc.top);
    for t in &doc.tables {
        match TABLES.get(t.which as usize) {
            Some((header, keys)) => {
                let header = if header.is_empty() {
                    "[inbound]"
                } else {
                    header
                };
                let _ = writeln!(out, "\n{header}");
                entries(&mut out, keys, &t.entries);
            }
            None => {
                let _ = writeln!(out, "\n[table{}]", t.which);
                entries(&mut out, &[], &t.entries);
            }
        }
    }
    postern_fuzz::check_config(&out);
});
