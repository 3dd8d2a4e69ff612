//! Each bad file in `tests/config/` must be refused with the exact line and column of the
//! mistake, a message saying what is wrong and a fix saying what to write instead.

use std::path::PathBuf;

use postern_engine::config::{Config, ConfigError};

struct Expected {
    line: usize,
    column: usize,
    message: &'static [&'static str],
    fix: &'static [&'static str],
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/config")
        .join(name)
}

fn assert_refused(name: &str, expected: Expected) {
    // Arrange
    let path = fixture(name);

    // Act
    let result = Config::load(&path);

    // Assert
    let err = match result {
        Ok(config) => panic!("{name} was accepted: {config:?}"),
        Err(err) => err,
    };
    let shown = err.to_string();
    let ConfigError::Invalid {
        path: reported,
        line,
        column,
        message,
        fix,
    } = err
    else {
        panic!("{name}: expected ConfigError::Invalid, got {shown}");
    };
    let fix = fix.unwrap_or_default();
    assert_eq!(reported, path, "{shown}");
    assert_eq!(
        (line, column),
        (expected.line, expected.column),
        "{name}: {shown}"
    );
    for phrase in expected.message {
        assert!(
            message.contains(phrase),
            "{name}: message lacks {phrase:?}: {shown}"
        );
    }
    for phrase in expected.fix {
        assert!(
            fix.contains(phrase),
            "{name}: fix lacks {phrase:?}: {shown}"
        );
    }
    assert!(
        shown.starts_with(&format!("{}:{line}:{column}: ", path.display())),
        "{shown}"
    );
    assert!(shown.contains(". Fix: "), "{shown}");
    assert!(
        !shown.contains('\n'),
        "errors are printed on one line: {shown}"
    );
}

#[test]
fn unknown_key_suggests_the_nearest_name() {
    assert_refused(
        "unknown_key.toml",
        Expected {
            line: 6,
            column: 1,
            message: &["unknown key `protocl` in [[queue_servers]]"],
            fix: &["did you mean `protocol`?", "host, port, protocol"],
        },
    );
}

#[test]
fn port_out_of_range() {
    assert_refused(
        "bad_port.toml",
        Expected {
            line: 5,
            column: 8,
            message: &["port 70000 is out of range", "1 to 65535"],
            fix: &["port = 25"],
        },
    );
}

#[test]
fn port_written_as_text() {
    assert_refused(
        "port_in_quotes.toml",
        Expected {
            line: 5,
            column: 11,
            message: &[
                "`port` must be a port number from 1 to 65535",
                "\"twenty-five\"",
            ],
            fix: &["port = 25"],
        },
    );
}

#[test]
fn deliver_with_an_unknown_scheme_lists_the_schemes() {
    assert_refused(
        "deliver_scheme.toml",
        Expected {
            line: 8,
            column: 11,
            message: &["\"imap://\"", "cannot deliver to"],
            fix: &["maildir:/srv/mail/Maildir", "smtp://192.168.1.10:25"],
        },
    );
}

#[test]
fn smarthost_must_be_smtp_or_smtps() {
    assert_refused(
        "smarthost_scheme.toml",
        Expected {
            line: 11,
            column: 13,
            message: &["\"http://\"", "only smtp:// and smtps://"],
            fix: &[
                "smtp://smtp.isp.example:587",
                "smtps://smtp.isp.example:465",
            ],
        },
    );
}

#[test]
fn domain_with_an_underscore() {
    assert_refused(
        "bad_domain.toml",
        Expected {
            line: 1,
            column: 30,
            message: &[
                "\"branch_office.example\" is not a valid domain name",
                "'_' is not allowed",
            ],
            fix: &["\"office.example\""],
        },
    );
}

#[test]
fn no_queue_server() {
    assert_refused(
        "no_queue_server.toml",
        Expected {
            line: 1,
            column: 1,
            message: &["no queue server"],
            fix: &["[[queue_servers]] followed by host = \"mail.isp.example\""],
        },
    );
}

#[test]
fn username_with_tls_off() {
    assert_refused(
        "username_tls_off.toml",
        Expected {
            line: 6,
            column: 12,
            message: &["tls = \"off\"", "password unencrypted"],
            fix: &["tls = \"required\"", "allow_plaintext_auth = true"],
        },
    );
}

#[test]
fn turn_without_allow_insecure_turn() {
    assert_refused(
        "turn_not_allowed.toml",
        Expected {
            line: 5,
            column: 12,
            message: &["protocol = \"turn\"", "allow_insecure_turn = true"],
            fix: &[
                "TURN lets anyone who can log in take the mail",
                "protocol = \"atrn\"",
            ],
        },
    );
}

#[test]
fn atrn_without_username() {
    assert_refused(
        "atrn_without_username.toml",
        Expected {
            line: 5,
            column: 12,
            message: &["protocol = \"atrn\" needs a `username`"],
            fix: &["posternd secret set office@mail.isp.example"],
        },
    );
}

#[test]
fn duration_that_is_not_one() {
    assert_refused(
        "bad_duration.toml",
        Expected {
            line: 10,
            column: 17,
            message: &["`refetch_every` \"every 15 minutes\" is not a duration"],
            fix: &["refetch_every = \"15m\""],
        },
    );
}

#[test]
fn missing_inbound_section() {
    assert_refused(
        "missing_inbound.toml",
        Expected {
            line: 1,
            column: 1,
            message: &["no [inbound] section"],
            fix: &["a line [inbound] followed by deliver = \"maildir:/srv/mail/Maildir\""],
        },
    );
}

#[test]
fn listen_with_only_a_port() {
    assert_refused(
        "listen_port_only.toml",
        Expected {
            line: 7,
            column: 25,
            message: &["\"2525\" is not an IP address with a port"],
            fix: &["\"0.0.0.0:2525\""],
        },
    );
}

#[test]
fn maildir_must_be_a_full_path() {
    assert_refused(
        "relative_maildir.toml",
        Expected {
            line: 7,
            column: 11,
            message: &["\"Maildir\" is not a full path"],
            fix: &["maildir:/srv/mail/Maildir"],
        },
    );
}

#[test]
fn tls_ca_that_does_not_exist_is_named() {
    assert_refused(
        "tls_ca_missing.toml",
        Expected {
            line: 6,
            column: 10,
            message: &["/nonexistent/postern/isp-ca.pem", "cannot read it"],
            fix: &["full path"],
        },
    );
}

#[test]
fn toml_syntax_error() {
    assert_refused(
        "not_toml.toml",
        Expected {
            line: 4,
            column: 8,
            message: &["not valid TOML"],
            fix: &["double quotes"],
        },
    );
}

#[test]
fn protocol_typo_suggests_the_choice() {
    assert_refused(
        "bad_protocol.toml",
        Expected {
            line: 5,
            column: 12,
            message: &["`protocol` cannot be \"etrm\""],
            fix: &["did you mean `protocol = \"etrn\"`?"],
        },
    );
}

#[test]
fn message_size_below_the_minimum() {
    assert_refused(
        "small_message_size.toml",
        Expected {
            line: 8,
            column: 20,
            message: &["too small", "64K"],
            fix: &["\"50M\""],
        },
    );
}

#[test]
fn unreadable_file_says_how_to_create_it() {
    // Arrange
    let path = fixture("does_not_exist.toml");

    // Act
    let err = Config::load(&path).expect_err("missing file");

    // Assert
    assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    assert!(err.to_string().contains("--config FILE"), "{err}");
}
