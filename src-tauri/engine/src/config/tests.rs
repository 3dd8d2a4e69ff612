use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// The contract's example (docs/configuration.md), except that it must validate: tls_ca stays
/// commented (the file would have to exist) and the fingerprint placeholder is too.
const CONTRACT_EXAMPLE: &str = r##"
domains = ["office.example"]            # the office's mail domains

[[queue_servers]]                        # tried in order
host = "mail.isp.example"
port = 25                                # default 25 for etrn/turn, 366 for atrn
protocol = "etrn"                        # etrn | atrn | turn
tls = "opportunistic"                    # required | opportunistic | off
# node = "#office"                       # optional ETRN argument override (servers like Exim want '#')
# username = "office"                    # the password is in the OS keyring
# tls_ca = "/etc/postern/isp-ca.pem"     # extra trust anchor (self-signed ISP, tests)
# tls_fingerprint = "sha256:AB:CD:..."   # or pin the server certificate
# allow_plaintext_auth = false           # AUTH without TLS only when set explicitly
# allow_insecure_turn = false            # protocol = "turn" only when set explicitly

[inbound]
listen = ["0.0.0.0:25"]
deliver = "maildir:/srv/mail/Maildir"    # or "smtp://192.168.1.10:25"

[outbound]                               # optional section
listen = ["0.0.0.0:587"]
allow = ["192.168.1.0/24"]
smarthost = "smtp://smtp.isp.example:587"
# smarthost_tls = "required"; smarthost_username = "office"

[link]
probe = "auto"                           # auto = first queue server; or host:port
refetch_every = "15m"                    # re-dequeue while online; "0" = only on link-up

[dns]
nameservers = []                         # empty = system resolver; ["127.0.0.1:5353"] for tests/split DNS
"##;

pub(super) const MINIMAL: &str = r#"
domains = ["office.example"]

[[queue_servers]]
host = "mail.isp.example"

[inbound]
deliver = "maildir:/srv/mail/Maildir"
"#;

pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("postern.toml"))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

pub(super) fn invalid(err: ConfigError) -> (usize, usize, String, String) {
    match err {
        ConfigError::Invalid {
            line,
            column,
            message,
            fix,
            ..
        } => (line, column, message, fix.unwrap_or_default()),
        other => panic!("expected Invalid, got {other}"),
    }
}

#[test]
fn contract_example_is_valid() {
    // Arrange / Act
    let config = parse(CONTRACT_EXAMPLE).expect("the contract example validates");

    // Assert
    assert_eq!(config.domains, vec!["office.example"]);
    let q = &config.queue_servers[0];
    assert_eq!(q.host, "mail.isp.example");
    assert_eq!(q.port, 25);
    assert_eq!(q.protocol, Protocol::Etrn);
    assert_eq!(q.tls, TlsMode::Opportunistic);
    assert_eq!(config.inbound.listen, vec![addr("0.0.0.0:25")]);
    assert_eq!(
        config.inbound.deliver,
        DeliverTarget::Maildir(PathBuf::from("/srv/mail/Maildir"))
    );
    let outbound = config.outbound.as_ref().expect("outbound present");
    assert_eq!(outbound.listen, vec![addr("0.0.0.0:587")]);
    assert_eq!(
        outbound.allow,
        vec!["192.168.1.0/24".parse::<ipnet::IpNet>().expect("net")]
    );
    assert_eq!(outbound.smarthost, "smtp://smtp.isp.example:587");
    assert_eq!(outbound.smarthost_tls, TlsMode::Required);
    assert_eq!(config.link.probe, "auto");
    assert_eq!(config.link.refetch_every, Duration::from_secs(15 * 60));
    assert!(config.dns.nameservers.is_empty());
}

#[test]
fn minimal_file_gets_every_default() {
    // Arrange / Act
    let config = parse(MINIMAL).expect("minimal config validates");

    // Assert
    let q = &config.queue_servers[0];
    assert_eq!(
        (q.port, q.protocol, q.tls),
        (25, Protocol::Etrn, TlsMode::Opportunistic)
    );
    assert_eq!(
        (&q.node, &q.username, &q.tls_ca, &q.tls_fingerprint),
        (&None, &None, &None, &None)
    );
    assert!(!q.allow_plaintext_auth && !q.allow_insecure_turn);
    assert_eq!(q.timeout, Duration::from_secs(30));
    let inbound = &config.inbound;
    assert_eq!(inbound.listen, vec![addr("0.0.0.0:25")]);
    let own = gethostname::gethostname()
        .to_string_lossy()
        .to_ascii_lowercase();
    assert_eq!(inbound.hostname, own.trim_end_matches('.'));
    assert_eq!(inbound.max_message_size, 50 * 1024 * 1024);
    assert_eq!(inbound.max_connections, 50);
    assert_eq!(inbound.max_connections_per_client, 20);
    assert_eq!(inbound.idle_timeout, Duration::from_secs(300));
    assert_eq!(config.outbound, None);
    assert_eq!(
        config.link,
        Link {
            probe: "auto".into(),
            refetch_every: Duration::from_secs(900),
            connect_back_timeout: Duration::from_secs(120),
        }
    );
    assert_eq!(config.dns, Dns::default());
    assert!(config.desktop.notifications);
}

#[test]
fn atrn_defaults_to_port_366_and_required_tls() {
    // Arrange
    let text = MINIMAL.replace(
        "host = \"mail.isp.example\"",
        "host = \"mail.isp.example\"\nprotocol = \"atrn\"\nusername = \"office\"",
    );

    // Act
    let config = parse(&text).expect("atrn config validates");

    // Assert
    let q = &config.queue_servers[0];
    assert_eq!((q.port, q.tls), (366, TlsMode::Required));
    assert_eq!(q.secret_name().as_deref(), Some("office@mail.isp.example"));
}

#[test]
fn outbound_defaults() {
    // Arrange
    let text = format!(
        "{MINIMAL}\n[outbound]\nlisten = [\"0.0.0.0:587\"]\nsmarthost = \"smtps://SMTP.isp.example\"\n"
    );

    // Act
    let config = parse(&text).expect("outbound validates");

    // Assert
    let outbound = config.outbound.expect("outbound present");
    assert_eq!(
        outbound.allow,
        vec![
            "127.0.0.1/32".parse::<ipnet::IpNet>().expect("net"),
            "::1/128".parse().expect("net")
        ]
    );
    assert_eq!(outbound.smarthost, "smtps://smtp.isp.example:465");
    assert!(outbound.smarthost_implicit_tls());
    assert_eq!(
        outbound.smarthost_host_port(),
        ("smtp.isp.example".to_string(), 465)
    );
}

#[test]
fn domains_are_normalised() {
    // Arrange
    let text = MINIMAL.replace(
        r#"domains = ["office.example"]"#,
        r#"domains = ["Office.Example.", "bücher.example"]"#,
    );

    // Act
    let config = parse(&text).expect("domains validate");

    // Assert
    assert_eq!(
        config.domains,
        vec!["office.example", "xn--bcher-kva.example"]
    );
}

#[test]
fn dns_names_are_checked_label_by_label() {
    // Arrange
    let long_label = "a".repeat(64);
    let cases = [
        ("office", "two parts"),
        ("office..example", "empty part"),
        ("-office.example", "starts or ends with '-'"),
        ("office_1.example", "'_' is not allowed"),
        (long_label.as_str(), "longer than 63"),
        ("192.168.1.1", "IP address"),
    ];

    for (input, reason) in cases {
        // Act
        let result = validate::dns_name(input, 2);

        // Assert
        let why = result.expect_err(input);
        assert!(why.contains(reason), "{input}: {why}");
    }
}

#[test]
fn message_sizes_accept_bytes_and_suffixes() {
    // Arrange
    let cases = [
        ("65536", Some(65536)),
        ("64K", Some(65536)),
        ("50M", Some(50 << 20)),
        ("50 MiB", Some(50 << 20)),
        ("2g", Some(2 << 30)),
        ("2GB", Some(2 << 30)),
        ("50 T", None),
        ("M", None),
        ("99999999999999999999G", None),
    ];

    for (input, expected) in cases {
        // Act
        let parsed = validate::parse_size(input);

        // Assert
        assert_eq!(parsed, expected, "{input}");
    }
}

#[test]
fn bare_nameserver_ip_gets_port_53() {
    // Arrange
    let text =
        format!("{MINIMAL}\n[dns]\nnameservers = [\"192.0.2.53\", \"::1\", \"127.0.0.1:5353\"]\n");

    // Act
    let config = parse(&text).expect("dns validates");

    // Assert
    assert_eq!(
        config.dns.nameservers,
        vec![
            addr("192.0.2.53:53"),
            addr("[::1]:53"),
            addr("127.0.0.1:5353")
        ]
    );
}

#[test]
fn every_key_round_trips_through_to_toml() {
    // Arrange
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("isp-ca.pem");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").expect("write ca");
    let text = format!(
        r##"
domains = ["office.example", "branch.example"]

[[queue_servers]]
host = "mail.isp.example"
protocol = "etrn"
node = "#office"
username = "office"
tls = "required"
tls_ca = "{ca}"
tls_fingerprint = "sha256:{fp}"
timeout = "45s"

[[queue_servers]]
host = "2001:db8::25"
protocol = "turn"
port = 2525
username = "office"
tls = "off"
allow_plaintext_auth = true
allow_insecure_turn = true

[inbound]
listen = ["127.0.0.1:2525", "[::1]:2525"]
deliver = "smtp://[2001:db8::10]:25"
hostname = "gateway.office.example"
max_message_size = "20M"
max_connections = 5
idle_timeout = "1m 30s"

[outbound]
listen = ["0.0.0.0:587"]
allow = ["192.168.1.0/24", "10.0.0.7"]
smarthost = "smtp://smtp.isp.example"
smarthost_tls = "opportunistic"
smarthost_username = "office"

[link]
probe = "mail.isp.example:25"
refetch_every = "0"
connect_back_timeout = "3m"

[dns]
nameservers = ["127.0.0.1:5353"]
"##,
        ca = ca.display(),
        fp = "ab".repeat(32),
    );
    let original = parse(&text).expect("full config validates");

    // Act
    let rendered = original.to_toml();
    let reparsed = parse(&rendered);

    // Assert
    let reparsed = reparsed.unwrap_or_else(|e| panic!("{e}\n{rendered}"));
    assert_eq!(reparsed, original);
    assert_eq!(
        original.inbound.deliver.to_string(),
        "smtp://[2001:db8::10]:25"
    );
    assert_eq!(
        original
            .outbound
            .as_ref()
            .map(|o| o.allow[1].to_string())
            .as_deref(),
        Some("10.0.0.7/32")
    );
    assert!(!rendered.to_ascii_lowercase().contains("password"));
}

#[test]
fn defaults_round_trip_too() {
    // Arrange
    let original = parse(MINIMAL).expect("minimal validates");

    // Act
    let rendered = original.to_toml();

    // Assert
    assert_eq!(parse(&rendered).expect("rendered validates"), original);
    assert!(rendered.contains("max_connections = 50"));
    assert!(rendered.contains("timeout = \"30s\""));
}

#[test]
fn notes_say_what_is_not_active_and_warn_about_turn() {
    // Arrange
    let text = format!(
        "{}\n[dns]\nnameservers = [\"127.0.0.1:5353\"]\n",
        CONTRACT_EXAMPLE
            .replace("nameservers = []", "")
            .replace("[dns]", "")
            .replace(
                "protocol = \"etrn\"",
                "protocol = \"turn\"\nusername = \"office\"\nallow_insecure_turn = true"
            )
    );
    let config = parse(&text).expect("validates");

    // Act
    let notes = config.notes();

    // Assert
    let all = notes.join("\n");
    assert!(!all.contains("not active"), "[outbound] is active: {all}");
    assert!(
        !all.contains("probe"),
        "the link watcher uses [link] probe: {all}"
    );
    assert!(!all.contains("nameservers"), "check-mx uses [dns]: {all}");
    assert!(
        all.contains("TURN lets anyone who can log in take the mail; prefer ATRN"),
        "{all}"
    );
}

#[test]
fn notes_stay_quiet_about_what_is_not_configured() {
    // Arrange
    let config = parse(MINIMAL).expect("validates");

    // Act
    let notes = config.notes();

    // Assert
    assert!(notes.is_empty(), "{notes:?}");
}

#[test]
fn unknown_top_level_section_suggests_the_right_one() {
    // Arrange
    let text = MINIMAL.replace("[inbound]", "[inbond]");

    // Act
    let (line, column, message, fix) = invalid(parse(&text).expect_err("typo"));

    // Assert
    assert_eq!((line, column), (7, 2));
    assert!(
        message.contains("unknown key or section `inbond`"),
        "{message}"
    );
    assert!(fix.contains("did you mean `inbound`?"), "{fix}");
}

#[test]
fn key_in_the_wrong_section_says_where_it_belongs() {
    // Arrange
    let text = format!("{MINIMAL}smarthost = \"smtp://smtp.isp.example:587\"\n");

    // Act
    let (line, column, message, fix) = invalid(parse(&text).expect_err("misplaced"));

    // Assert
    assert_eq!((line, column), (9, 1));
    assert!(
        message.contains("unknown key `smarthost` in [inbound]"),
        "{message}"
    );
    assert!(fix.contains("belongs in [outbound]"), "{fix}");
}

#[test]
fn top_level_key_after_a_section_says_to_move_it_up() {
    // Arrange
    let text = format!(
        "{}domains = [\"office.example\"]\n",
        MINIMAL.replace("domains = [\"office.example\"]", "")
    );

    // Act
    let (line, column, message, fix) = invalid(parse(&text).expect_err("misplaced"));

    // Assert
    assert_eq!((line, column), (9, 1));
    assert!(
        message.contains("unknown key `domains` in [inbound]"),
        "{message}"
    );
    assert!(fix.contains("belongs at the top of the file"), "{fix}");
}

#[test]
fn every_key_is_in_the_reference_doc() {
    // Arrange
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let doc = std::fs::read_to_string(&doc_path).expect("docs/configuration.md exists");

    for key in keys::KEYS {
        // Act
        let documented =
            doc.contains(&format!("`{}`", key.key)) || doc.contains(&format!("[{}]", key.key));

        // Assert
        assert!(
            documented,
            "docs/configuration.md does not mention `{}`",
            key.key
        );
    }
}

#[test]
fn the_reference_doc_examples_validate() {
    // Arrange
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let doc = std::fs::read_to_string(&doc_path).expect("docs/configuration.md exists");
    let whole_files: Vec<&str> = doc
        .split("```toml\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .filter(|block| block.starts_with("domains =") && block.contains("[inbound]"))
        .collect();

    // Act
    let results: Vec<_> = whole_files.iter().map(|text| parse(text)).collect();

    // Assert
    assert!(whole_files.len() >= 2, "the doc lost its examples");
    for result in results {
        if let Err(e) = result {
            panic!("an example in docs/configuration.md is refused: {e}");
        }
    }
}

#[test]
fn listen_with_a_name_asks_for_an_ip_address() {
    // Arrange
    let text = MINIMAL.replace("[inbound]", "[inbound]\nlisten = [\"localhost:2525\"]");

    // Act
    let (line, column, message, fix) = invalid(parse(&text).expect_err("name"));

    // Assert
    assert_eq!((line, column), (8, 11));
    assert!(
        message.contains("\"localhost:2525\" is not an IP address with a port"),
        "{message}"
    );
    assert!(fix.contains("\"127.0.0.1:2525\""), "{fix}");
}

#[test]
fn probe_is_normalised_and_needs_a_port() {
    // Arrange
    let good = format!("{MINIMAL}\n[link]\nprobe = \"[2001:DB8::1]:25\"\n");
    let bad = format!("{MINIMAL}\n[link]\nprobe = \"mail.isp.example\"\n");

    // Act
    let config = parse(&good).expect("probe validates");
    let (line, column, message, fix) = invalid(parse(&bad).expect_err("no port"));

    // Assert
    assert_eq!(config.link.probe, "[2001:db8::1]:25");
    assert_eq!((line, column), (11, 9));
    assert!(message.contains("the port is missing"), "{message}");
    assert!(fix.contains("probe = \"mail.isp.example:25\""), "{fix}");
}

#[test]
fn desktop_notifications_can_be_switched_off() {
    // Arrange
    let text = format!("{MINIMAL}\n[desktop]\nnotifications = false\n");

    // Act
    let config = parse(&text).expect("[desktop] validates");
    let reloaded = parse(&config.to_toml()).expect("the saved form validates");

    // Assert
    assert!(!config.desktop.notifications);
    assert_eq!(reloaded.desktop, config.desktop);
}

#[test]
fn desktop_notifications_must_be_true_or_false() {
    // Arrange
    let text = format!("{MINIMAL}\n[desktop]\nnotifications = \"off\"\n");

    // Act
    let (line, _, message, fix) = invalid(parse(&text).expect_err("a string"));

    // Assert
    assert_eq!(line, 11);
    assert!(message.contains("notifications"), "{message}");
    assert!(fix.contains("notifications = true"), "{fix}");
}

#[test]
fn a_config_without_desktop_deserializes_with_notifications_on() {
    // Arrange: the JSON a front end built before [desktop] existed.
    let mut json = serde_json::to_value(parse(MINIMAL).expect("minimal")).expect("json");
    json.as_object_mut().expect("object").remove("desktop");

    // Act
    let config: Config = serde_json::from_value(json).expect("deserializes");

    // Assert
    assert!(config.desktop.notifications);
}
