//! `[[backup_for]]` and `[backup]`.

use std::time::Duration;

use super::tests::{MINIMAL, invalid, parse};
use super::*;

fn with(extra: &str) -> String {
    format!("{MINIMAL}\n{extra}")
}

#[test]
fn a_backup_for_entry_gets_its_defaults_and_round_trips() {
    // Arrange
    let text = with(
        r#"
[[backup_for]]
domain = "Neighbour.Example"
release = ["etrn", "atrn"]
username = "neighbour"

[[backup_for]]
domain = "other.example"
deliver_to = "smtp://10.0.0.9:2525"
release = ["etrn"]
hold = false
max_hold = "2d"

[backup]
mx_port = 2526
etrn_per_minute = 0
"#,
    );

    // Act
    let config = parse(&text).expect("validates");
    let reparsed = parse(&config.to_toml());

    // Assert
    let first = &config.backup_for[0];
    assert_eq!(first.domain, "neighbour.example");
    assert_eq!(first.deliver_to, BackupTarget::Mx);
    assert!(first.hold);
    assert_eq!(first.max_hold, Duration::from_secs(7 * 86_400));
    assert_eq!(first.secret_name().as_deref(), Some("neighbour@backup"));
    assert_eq!(
        config.backup_for[1].deliver_to,
        BackupTarget::Smtp {
            host: "10.0.0.9".into(),
            port: 2525
        }
    );
    assert_eq!(
        config.backup.odmr_listen,
        vec!["0.0.0.0:366".parse().expect("addr")]
    );
    assert_eq!(config.backup.mx_port, 2526);
    assert_eq!(reparsed.expect("rendered validates"), config);
}

#[test]
fn without_atrn_there_is_no_odmr_listener() {
    // Arrange
    let text = with("[[backup_for]]\ndomain = \"n.example\"\nrelease = [\"etrn\"]\n");

    // Act
    let config = parse(&text).expect("validates");

    // Assert
    assert!(config.backup.odmr_listen.is_empty());
    assert_eq!(config.backup.etrn_per_minute, DEFAULT_ETRN_PER_MINUTE);
}

#[test]
fn the_office_s_own_domain_cannot_be_backed_up() {
    // Arrange
    let text = with("[[backup_for]]\ndomain = \"office.example\"\nrelease = [\"etrn\"]\n");

    // Act
    let (line, _, message, fix) = invalid(parse(&text).expect_err("refused"));

    // Assert
    assert_eq!(line, 11);
    assert!(message.contains("one of the office's own"), "{message}");
    assert!(fix.contains("remove"), "{fix}");
}

#[test]
fn atrn_without_a_username_says_how_to_store_the_password() {
    // Arrange
    let text = with("[[backup_for]]\ndomain = \"n.example\"\nrelease = [\"atrn\"]\n");

    // Act
    let (_, _, message, fix) = invalid(parse(&text).expect_err("refused"));

    // Assert
    assert!(message.contains("needs a `username`"), "{message}");
    assert!(
        fix.contains("posternd secret set neighbour@backup"),
        "{fix}"
    );
}

#[test]
fn wrong_values_are_placed_and_explained() {
    let cases = [
        ("release = []", "`release` is empty"),
        ("release = [\"turn\"]", "\"turn\" is not a way"),
        (
            "release = [\"etrn\"]\ndeliver_to = \"maildir:/x\"",
            "`deliver_to` is not valid",
        ),
        ("release = [\"etrn\"]\nmax_hold = \"0\"", "cannot be zero"),
        ("", "has no `release`"),
    ];
    for (lines, expected) in cases {
        // Arrange
        let text = with(&format!(
            "[[backup_for]]\ndomain = \"n.example\"\n{lines}\n"
        ));

        // Act
        let (_, _, message, _) = invalid(parse(&text).expect_err(lines));

        // Assert
        assert!(message.contains(expected), "{lines}: {message}");
    }
}

#[test]
fn a_domain_backed_up_twice_is_refused() {
    // Arrange
    let entry = "[[backup_for]]\ndomain = \"n.example\"\nrelease = [\"etrn\"]\n";
    let text = with(&format!("{entry}{entry}"));

    // Act
    let (_, _, message, _) = invalid(parse(&text).expect_err("refused"));

    // Assert
    assert!(message.contains("two [[backup_for]] entries"), "{message}");
}
