//! `posternd check-mx [DOMAIN] [--nameserver IP:PORT] [--json] [--dry-run-etrn] [--config F]`:
//! main.rs parses the flags and loads the config, then calls [`run`].

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::Path;

use super::backup::check_backup;
use super::backup_input::BackupCheckInput;
use super::check::check;
use super::findings::{CheckError, CheckInput, Report, normalize_host};
use crate::config::{self, Config};

/// The arguments of `posternd check-mx`, after parsing.
#[derive(Debug, Clone, Default)]
pub struct CheckMxArgs {
    /// None = every domain in the config.
    pub domain: Option<String>,
    /// Overrides `[dns] nameservers`.
    pub nameserver: Option<SocketAddr>,
    pub json: bool,
    pub dry_run_etrn: bool,
    /// The loaded config, if there is one (the check then knows the queuing servers and the
    /// inbound listener).
    pub config: Option<Config>,
}

/// The config for a check: `--config FILE` must load; the default location (or
/// `$POSTERN_CONFIG`) is used when the file exists; without any config a named domain is still
/// checked (DNS and the MX hosts only).
pub fn config_for(flag: Option<&Path>, domain: Option<&str>) -> Result<Option<Config>, String> {
    let path = config::config_path(flag);
    match path {
        Some(p) if flag.is_some() || p.exists() => {
            Config::load(&p).map(Some).map_err(|e| e.to_string())
        }
        _ if domain.is_some() => Ok(None),
        Some(p) => Err(format!(
            "no domain given and no config at {}: name the domain (`posternd check-mx office.example`) or pass --config FILE",
            p.display()
        )),
        None => Err(
            "no domain given and no config folder on this system: name the domain or pass --config FILE"
                .into(),
        ),
    }
}

/// All of `posternd check-mx`: loads the config (see [`config_for`]), runs the check, prints
/// it. main.rs only forwards the parsed flags and exits with the returned code.
pub async fn run_command(
    domain: Option<String>,
    config_flag: Option<&Path>,
    nameserver: Option<SocketAddr>,
    json: bool,
    dry_run_etrn: bool,
) -> u8 {
    let config = match config_for(config_flag, domain.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("posternd check-mx: {e}");
            return 2;
        }
    };
    run(CheckMxArgs {
        domain,
        nameserver,
        json,
        dry_run_etrn,
        config,
    })
    .await
}

/// Whether `domain` is one of the config's `[[backup_for]]` domains.
fn is_backup(args: &CheckMxArgs, domain: &str) -> bool {
    args.config.as_ref().is_some_and(|c| {
        c.backup_for
            .iter()
            .any(|b| b.domain == normalize_host(domain))
    })
}

/// The inputs for each of the office's own domains to check (none when `DOMAIN` names a
/// `[[backup_for]]` domain: see [`backup_inputs`]).
pub fn inputs(args: &CheckMxArgs) -> Result<Vec<CheckInput>, CheckError> {
    let domains: Vec<String> = match (&args.domain, &args.config) {
        (Some(d), _) if is_backup(args, d) => Vec::new(),
        (Some(d), _) => vec![d.clone()],
        (None, Some(c)) if !c.domains.is_empty() || !c.backup_for.is_empty() => c.domains.clone(),
        _ => return Err(CheckError::NoDomain),
    };
    Ok(domains
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut input = match &args.config {
                Some(c) => CheckInput::from_config(c, d),
                None => CheckInput::new(d),
            };
            if i > 0 {
                // One smarthost for all the domains: checked once, with the first.
                input.smarthost = None;
            }
            if let Some(ns) = args.nameserver {
                input.nameservers = vec![ns];
            }
            input.dry_run_etrn = args.dry_run_etrn;
            input
        })
        .collect())
}

/// The inputs for each `[[backup_for]]` domain to check: all of them, or the one `DOMAIN` names.
pub fn backup_inputs(args: &CheckMxArgs) -> Vec<BackupCheckInput> {
    let Some(config) = &args.config else {
        return Vec::new();
    };
    config
        .backup_for
        .iter()
        .filter(|b| {
            args.domain
                .as_ref()
                .is_none_or(|d| normalize_host(d) == b.domain)
        })
        .map(|b| {
            let mut input = BackupCheckInput::from_config(config, b);
            if let Some(ns) = args.nameserver {
                input.nameservers = vec![ns];
            }
            input
        })
        .collect()
}

/// Runs the check and prints it on stdout (a one-line reason on stderr when it cannot run).
/// Returns the exit code: 0 = no errors, 1 = errors found, 2 = the check could not run.
/// `--json` prints one report object, or an array of them when several domains were checked.
pub async fn run(args: CheckMxArgs) -> u8 {
    let inputs = match inputs(&args) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("posternd check-mx: {e}");
            return 2;
        }
    };
    let mut reports: Vec<Report> = Vec::new();
    for input in &inputs {
        match check(input).await {
            Ok(r) => reports.push(r),
            Err(e) => {
                eprintln!("posternd check-mx: {e}");
                return 2;
            }
        }
    }
    for input in &backup_inputs(&args) {
        match check_backup(input).await {
            Ok(r) => reports.push(r),
            Err(e) => {
                eprintln!("posternd check-mx: {e}");
                return 2;
            }
        }
    }
    let text = if args.json {
        let json = if reports.len() == 1 {
            serde_json::to_string_pretty(&reports[0])
        } else {
            serde_json::to_string_pretty(&reports)
        };
        match json {
            Ok(j) => j + "\n",
            Err(e) => {
                eprintln!("posternd check-mx: cannot write the report as JSON: {e}");
                return 2;
            }
        }
    } else {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let parts: Vec<String> = reports.iter().map(|r| r.render_human(color)).collect();
        parts.join("\n")
    };
    let mut out = std::io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        return 2;
    }
    reports.iter().map(Report::exit_code).max().unwrap_or(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_domain_every_configured_domain_is_checked() {
        let text = r#"
domains = ["office.test", "second.test"]
[[queue_servers]]
host = "isp.test"
protocol = "etrn"
[inbound]
listen = ["0.0.0.0:2525"]
deliver = "maildir:/srv/mail/Maildir"
hostname = "mx1.office.test"
[dns]
nameservers = ["127.0.0.1:5353"]
"#;
        let config = Config::parse(text, std::path::Path::new("postern.toml")).unwrap();
        let args = CheckMxArgs {
            config: Some(config),
            ..CheckMxArgs::default()
        };

        let inputs = inputs(&args).unwrap();

        let domains: Vec<&str> = inputs.iter().map(|i| i.domain.as_str()).collect();
        assert_eq!(domains, ["office.test", "second.test"]);
        assert_eq!(inputs[0].queue_servers[0].host, "isp.test");
        assert_eq!(inputs[0].queue_servers[0].port, 25);
        assert_eq!(
            inputs[0].nameservers,
            vec!["127.0.0.1:5353".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            inputs[0].inbound_listen,
            vec!["0.0.0.0:2525".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(inputs[0].office_hint.as_deref(), Some("mx1.office.test"));
    }

    #[test]
    fn a_named_config_must_load() {
        let missing = std::path::Path::new("/nonexistent/postern.toml");

        let explicit = config_for(Some(missing), Some("office.test"));

        assert!(explicit.is_err());
    }

    #[test]
    fn backup_for_domains_get_their_own_report() {
        let text = r#"
domains = ["a.test"]
[[queue_servers]]
host = "isp.test"
[inbound]
listen = ["0.0.0.0:25"]
deliver = "maildir:/srv/mail/Maildir"
hostname = "backup.a.test"
[[backup_for]]
domain = "b.test"
deliver_to = "mx"
release = ["etrn"]
"#;
        let config = Config::parse(text, std::path::Path::new("postern.toml")).unwrap();
        let every = CheckMxArgs {
            config: Some(config.clone()),
            nameserver: Some("127.0.0.1:5353".parse().unwrap()),
            ..CheckMxArgs::default()
        };
        let named = CheckMxArgs {
            domain: Some("B.test".into()),
            config: Some(config),
            ..CheckMxArgs::default()
        };

        let (own, backups) = (inputs(&every).unwrap(), backup_inputs(&every));
        let (own_named, backups_named) = (inputs(&named).unwrap(), backup_inputs(&named));

        assert_eq!(own.len(), 1);
        assert_eq!(backups.len(), 1);
        assert_eq!(backups[0].domain, "b.test");
        assert_eq!(backups[0].our_host, "backup.a.test");
        assert_eq!(backups[0].nameservers, vec![every.nameserver.unwrap()]);
        assert!(own_named.is_empty());
        assert_eq!(backups_named.len(), 1);
    }

    #[test]
    fn needs_a_domain() {
        let args = CheckMxArgs::default();

        assert!(matches!(inputs(&args), Err(CheckError::NoDomain)));
    }

    #[test]
    fn nameserver_flag_and_dry_run_reach_the_input() {
        let args = CheckMxArgs {
            domain: Some("office.test".into()),
            nameserver: Some("127.0.0.1:5353".parse().unwrap()),
            dry_run_etrn: true,
            ..CheckMxArgs::default()
        };

        let inputs = inputs(&args).unwrap();

        assert_eq!(inputs.len(), 1);
        assert_eq!(inputs[0].domain, "office.test");
        assert_eq!(inputs[0].nameservers, vec![args.nameserver.unwrap()]);
        assert!(inputs[0].dry_run_etrn);
        assert_eq!(inputs[0].mx_port, 25);
    }
}
