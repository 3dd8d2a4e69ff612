//! A private Postfix instance acting as the ISP's queuing server (backup MX) that holds mail for
//! the office until it is asked to release it with ETRN.
//!
//! Recipe (see shared/peers.md): own directory (0755, else Postfix fails silently), generated
//! main.cf/master.cf, `postfix -c DIR/etc check && start`; root only. Mail for the relay domains is
//! accepted and held (`defer_transports = smtp`) until an ETRN releases it to `deliver_to`; if
//! nothing listens there, it stays queued. Start takes about 3 s on this machine (measured: `check` + `start`; the port answers as soon
//! as `postfix start` returns), stop about 1 s.
//! Several instances run side by side (own directory, port and `syslog_name`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::error::{HarnessError, IoContext, Result};
use super::messages::TestMessage;
use super::netns::NetNs;
use super::ports;
use super::preconditions::require_root;
use super::process::{kill_pid, output_within, pid_alive, run};
use super::smtp_client;
use super::wait::poll_until;

const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
const START_TIMEOUT: Duration = Duration::from_secs(20);

static INSTANCE: AtomicU32 = AtomicU32::new(0);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum EtrnMode {
    #[default]
    Normal,
    /// `smtpd_etrn_restrictions = reject`: 554 5.7.1 ... Access denied.
    Rejected,
    /// `flush_service_name = noflush`: 458 Unable to queue messages.
    FlushDown,
    /// ETRN neither announced nor understood (500 command not recognized).
    Absent,
}

/// Options for [`PostfixQueue`]; start with [`PostfixQueue::builder`].
#[derive(Clone, Debug)]
pub struct PostfixQueueBuilder {
    relay_domains: Vec<String>,
    deliver_to: Option<SocketAddr>,
    listen: Option<SocketAddr>,
    inet_interfaces: Option<String>,
    mynetworks: Vec<String>,
    netns: Option<(String, Ipv4Addr)>,
    mode: EtrnMode,
    tls: Option<(String, String)>,
    main_cf: Vec<(String, String)>,
    smtpd_options: Vec<(String, String)>,
    hostname: String,
    routes: Vec<(String, SocketAddr)>,
    hold: bool,
    sasl: Option<(String, String)>,
    smtps: Option<SocketAddr>,
    parent_dir: Option<PathBuf>,
}

impl Default for PostfixQueueBuilder {
    fn default() -> Self {
        Self {
            relay_domains: vec!["office.test".into()],
            deliver_to: None,
            listen: None,
            inet_interfaces: None,
            mynetworks: vec!["127.0.0.0/8".into()],
            netns: None,
            mode: EtrnMode::Normal,
            tls: None,
            main_cf: Vec::new(),
            smtpd_options: Vec::new(),
            hostname: "isp-queue.test".into(),
            routes: Vec::new(),
            hold: true,
            sasl: None,
            smtps: None,
            parent_dir: None,
        }
    }
}

impl PostfixQueueBuilder {
    /// Domains it holds mail for and accepts ETRN for (default `["office.test"]`).
    pub fn relay_domains(mut self, domains: &[&str]) -> Self {
        self.relay_domains = domains.iter().map(|d| (*d).to_string()).collect();
        self
    }

    /// Where released mail goes (the office's inbound listener), for every relay domain. Default:
    /// a free loopback port where nothing listens, so released mail stays queued.
    pub fn deliver_to(mut self, addr: SocketAddr) -> Self {
        self.deliver_to = Some(addr);
        self
    }

    /// Address of its SMTP listener (default 127.0.0.1 and a free port). Also sets
    /// `inet_interfaces` to that IP unless [`Self::inet_interfaces`] is given.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// The `inet_interfaces` value (default: the listen IP).
    pub fn inet_interfaces(mut self, value: &str) -> Self {
        self.inet_interfaces = Some(value.into());
        self
    }

    /// Adds a network allowed to relay and to use ETRN (default only `127.0.0.0/8`).
    pub fn allow_network(mut self, cidr: &str) -> Self {
        self.mynetworks.push(cidr.into());
        self
    }

    /// Runs the instance inside `ns` (`ip netns exec`), listening on `ns.ns_addr()` (the port of
    /// [`Self::listen`] if given, else 2525) and allowing ETRN from the namespace's subnet. Its
    /// queue and log stay readable from the host. Declare the `NetNs` before the queue so that the
    /// queue is dropped (stopped) first.
    pub fn in_netns(mut self, ns: &NetNs) -> Self {
        self.netns = Some((ns.name().to_string(), ns.ns_addr()));
        self.mynetworks.push(ns.subnet());
        self
    }

    /// ETRN is refused by policy: `554 5.7.1 <...>: Etrn command rejected: Access denied`.
    pub fn etrn_rejected(mut self) -> Self {
        self.mode = EtrnMode::Rejected;
        self
    }

    /// The flush service is unavailable: ETRN gets `458 Unable to queue messages`.
    pub fn flush_down(mut self) -> Self {
        self.mode = EtrnMode::FlushDown;
        self
    }

    /// A server without ETRN: EHLO does not list it and the command gets
    /// `500 5.5.2 Error: command not recognized`.
    pub fn without_etrn(mut self) -> Self {
        self.mode = EtrnMode::Absent;
        self
    }

    /// Offers STARTTLS with this certificate chain and key (PEM), e.g. from
    /// [`super::TestPki`].
    pub fn with_starttls(mut self, cert_pem: &str, key_pem: &str) -> Self {
        self.tls = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Any other main.cf parameter (later values win).
    pub fn main_cf(mut self, name: &str, value: &str) -> Self {
        self.main_cf.push((name.into(), value.into()));
        self
    }

    /// Mail for `domain` (which need not be a relay domain: clients in `mynetworks` may relay
    /// anywhere) goes to `addr` by SMTP, e.g. an outside domain to an `smtp-sink`.
    pub fn route(mut self, domain: &str, addr: SocketAddr) -> Self {
        self.routes.push((domain.into(), addr));
        self
    }

    /// Delivers at once instead of holding mail until ETRN (`defer_transports =` empty).
    pub fn deliver_at_once(mut self) -> Self {
        self.hold = false;
        self
    }

    /// Makes its instance directory (queue included) under `dir` instead of the system's
    /// temporary directory (the bench puts it on a filesystem of its own).
    pub fn parent_dir(mut self, dir: &Path) -> Self {
        self.parent_dir = Some(dir.to_path_buf());
        self
    }

    /// The name in its banner and its Received: headers (default `isp-queue.test`).
    pub fn hostname(mut self, name: &str) -> Self {
        self.hostname = name.into();
        self
    }

    /// Asks for SMTP AUTH (Cyrus SASL, PLAIN and LOGIN, from an sasldb holding only this login;
    /// AUTH only after TLS) and relays for authenticated clients only: `mynetworks` no longer
    /// lets loopback clients relay. Needs `saslpasswd2` (package sasl2-bin).
    pub fn with_sasl(mut self, user: &str, password: &str) -> Self {
        self.sasl = Some((user.into(), password.into()));
        self
    }

    /// A second listener at `addr` with TLS from the first byte (`smtpd_tls_wrappermode`, the
    /// submissions port 465); needs [`Self::with_starttls`] for its certificate.
    pub fn with_smtps(mut self, addr: SocketAddr) -> Self {
        self.smtps = Some(addr);
        self
    }

    /// A `-o name=value` override on the SMTP listener only (no spaces in `value`).
    pub fn smtpd_option(mut self, name: &str, value: &str) -> Self {
        self.smtpd_options.push((name.into(), value.into()));
        self
    }

    /// Creates the directory, writes the configuration, runs `postfix check` and `postfix start`,
    /// and waits until the listener answers (from the host; inside a namespace, until the master
    /// has started). Root only.
    pub fn start(self) -> Result<PostfixQueue> {
        require_root().map_err(HarnessError::Other)?;
        let listen = match (&self.netns, self.listen) {
            (Some((_, ip)), given) => {
                SocketAddr::new(IpAddr::V4(*ip), given.map_or(2525, |a| a.port()))
            }
            (None, Some(given)) => given,
            (None, None) => SocketAddr::from((Ipv4Addr::LOCALHOST, ports::free_port())),
        };
        let deliver_to = self.deliver_to.unwrap_or_else(ports::free_addr);
        let instance = INSTANCE.fetch_add(1, Ordering::Relaxed);
        let mut tmp = tempfile::Builder::new();
        tmp.prefix("postern-postfix-");
        let tmp = match &self.parent_dir {
            Some(parent) => tmp.tempdir_in(parent),
            None => tmp.tempdir(),
        }
        .context(|| "create Postfix instance directory".into())?;
        let dir = tmp.path().to_path_buf();
        let guard = PostfixQueue {
            dir: dir.clone(),
            _tmp: tmp,
            listen,
            deliver_to,
            started: false,
        };
        guard.write_config(&self, instance)?;
        // Inside a namespace the listen address exists only there, so `check` runs there too.
        let postfix = |action: &str| {
            let mut c = match &self.netns {
                Some((ns, _)) => {
                    let mut c = Command::new("ip");
                    c.args(["netns", "exec", ns, "postfix"]);
                    c
                }
                None => Command::new("postfix"),
            };
            c.arg("-c").arg(dir.join("etc")).arg(action);
            c
        };
        run(&mut postfix("check"), COMMAND_TIMEOUT).map_err(|e| {
            // `postfix check` logs through postlogd, which is not running yet: it fails without a
            // word, so name the usual causes.
            guard.with_log(HarnessError::Other(format!(
                "{e}\n(postfix check says nothing here; usual causes: the listen address {listen} is \
                 not on this host or namespace, a bad main_cf()/smtpd_option() value, or missing \
                 postfix user/postdrop group: run scripts/install-test-deps.sh)"
            )))
        })?;
        let mut guard = guard;
        guard.started = true;
        run(&mut postfix("start"), COMMAND_TIMEOUT).map_err(|e| guard.with_log(e))?;
        if self.netns.is_none() {
            ports::wait_for_port(listen, START_TIMEOUT).map_err(|e| guard.with_log(e))?;
        } else {
            guard
                .wait_for_log("daemon started", START_TIMEOUT)
                .map_err(|e| guard.with_log(e))?;
        }
        Ok(guard)
    }
}

/// A running private Postfix; stopped (and its master killed if need be) and removed on drop.
pub struct PostfixQueue {
    dir: PathBuf,
    _tmp: tempfile::TempDir,
    listen: SocketAddr,
    deliver_to: SocketAddr,
    started: bool,
}

impl PostfixQueue {
    /// Options: relay domains, where to deliver, listen address, ETRN variants, STARTTLS.
    pub fn builder() -> PostfixQueueBuilder {
        PostfixQueueBuilder::default()
    }

    /// The office mail server behind Postern (`deliver = "smtp://…"`, see shared/peers.md): it
    /// trusts 127.0.0.0/8 (`mynetworks`, so Postern may relay through it), takes mail for
    /// `office.test` and passes it at once to `mailboxes` (an `smtp-sink` standing for the
    /// users' mailboxes). Postfix 3.7's default `smtpd_forbid_bare_newline = no` is kept: a bare
    /// LF ends a line, as on the servers Postern must protect. Add outside domains with
    /// [`PostfixQueueBuilder::route`].
    pub fn office(mailboxes: SocketAddr) -> PostfixQueueBuilder {
        PostfixQueueBuilder::default()
            .deliver_to(mailboxes)
            .deliver_at_once()
            .hostname("office-mx.test")
    }

    /// A normal instance for `office.test` on 127.0.0.1, delivering to `deliver_to` on ETRN.
    pub fn start(deliver_to: SocketAddr) -> Result<Self> {
        Self::builder().deliver_to(deliver_to).start()
    }

    pub fn port(&self) -> u16 {
        self.listen.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.listen
    }

    /// Where released mail is delivered.
    pub fn deliver_to(&self) -> SocketAddr {
        self.deliver_to
    }

    /// The instance directory (etc/, queue/, data/, maillog).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn config_dir(&self) -> PathBuf {
        self.dir.join("etc")
    }

    fn write_config(&self, opts: &PostfixQueueBuilder, instance: u32) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = &self.dir;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .context(|| format!("chmod 755 {}", dir.display()))?;
        for sub in ["etc", "queue", "data"] {
            std::fs::create_dir_all(dir.join(sub)).context(|| format!("create {sub}/"))?;
        }
        let mut chown = Command::new("chown");
        chown.arg("postfix:postfix").arg(dir.join("data"));
        run(&mut chown, COMMAND_TIMEOUT)?;

        let ip = self.listen.ip();
        let inet_interfaces = opts
            .inet_interfaces
            .clone()
            .unwrap_or_else(|| ip.to_string());
        let transports: Vec<String> = opts
            .relay_domains
            .iter()
            .map(|d| (d, self.deliver_to))
            .chain(opts.routes.iter().map(|(d, a)| (d, *a)))
            .map(|(d, addr)| format!("{d}=smtp:[{}]:{}", addr.ip(), addr.port()))
            .collect();
        let mut main = vec![
            ("compatibility_level", "3.6".to_string()),
            ("queue_directory", format!("{}/queue", dir.display())),
            ("data_directory", format!("{}/data", dir.display())),
            ("maillog_file", format!("{}/maillog", dir.display())),
            ("maillog_file_prefixes", dir.display().to_string()),
            (
                "syslog_name",
                format!("postern-isp-{}-{instance}", std::process::id()),
            ),
            ("mail_owner", "postfix".into()),
            ("setgid_group", "postdrop".into()),
            ("myhostname", opts.hostname.clone()),
            ("mydestination", String::new()),
            ("inet_interfaces", inet_interfaces),
            ("inet_protocols", "ipv4".into()),
            ("mynetworks", opts.mynetworks.join(", ")),
            ("alias_maps", String::new()),
            ("alias_database", String::new()),
            ("local_recipient_maps", String::new()),
            ("relay_domains", opts.relay_domains.join(", ")),
            (
                "transport_maps",
                format!("inline:{{ {} }}", transports.join(", ")),
            ),
            (
                "smtpd_relay_restrictions",
                "permit_mynetworks, reject_unauth_destination".into(),
            ),
            ("fast_flush_domains", "$relay_domains".into()),
            (
                "smtpd_etrn_restrictions",
                "permit_mynetworks, reject".into(),
            ),
            // Hold everything until ETRN (which overrides it); postsuper -h would not be released.
            (
                "defer_transports",
                if opts.hold { "smtp" } else { "" }.into(),
            ),
            ("smtpd_banner", "$myhostname ESMTP Postfix".into()),
            ("biff", "no".into()),
            // Large enough for tests of Postern's own size limit (default 50 MiB).
            ("message_size_limit", "104857600".into()),
            ("mailbox_size_limit", "0".into()),
        ];
        let mut smtpd_options: Vec<(String, String)> = Vec::new();
        match opts.mode {
            EtrnMode::Normal => {}
            EtrnMode::Rejected => {
                smtpd_options.push(("smtpd_etrn_restrictions".into(), "reject".into()))
            }
            EtrnMode::FlushDown => {
                smtpd_options.push(("flush_service_name".into(), "noflush".into()))
            }
            EtrnMode::Absent => {
                // Hiding the keyword alone is not enough: Postfix still executes ETRN. Renaming the
                // command makes it unknown, as on a server without the extension.
                let table = dir.join("etc/no_etrn.regexp");
                std::fs::write(&table, "/^ETRN(.*)$/ XETRN$1\n")
                    .context(|| format!("write {}", table.display()))?;
                smtpd_options.push(("smtpd_discard_ehlo_keywords".into(), "etrn".into()));
                smtpd_options.push((
                    "smtpd_command_filter".into(),
                    format!("regexp:{}", table.display()),
                ));
            }
        }
        if let Some((cert, key)) = &opts.tls {
            let tls_dir = dir.join("etc/tls");
            std::fs::create_dir_all(&tls_dir).context(|| "create etc/tls".into())?;
            std::fs::write(tls_dir.join("cert.pem"), cert).context(|| "write cert.pem".into())?;
            std::fs::write(tls_dir.join("key.pem"), key).context(|| "write key.pem".into())?;
            std::fs::set_permissions(
                tls_dir.join("key.pem"),
                std::fs::Permissions::from_mode(0o600),
            )
            .context(|| "chmod key.pem".into())?;
            main.push((
                "smtpd_tls_cert_file",
                format!("{}/cert.pem", tls_dir.display()),
            ));
            main.push((
                "smtpd_tls_key_file",
                format!("{}/key.pem", tls_dir.display()),
            ));
            main.push(("smtpd_tls_security_level", "may".into()));
            main.push(("smtpd_tls_loglevel", "1".into()));
        }
        if let Some((user, password)) = &opts.sasl {
            let sasl_dir = dir.join("etc/sasl");
            std::fs::create_dir_all(&sasl_dir).context(|| "create etc/sasl".into())?;
            let db = sasl_dir.join("sasldb2");
            std::fs::write(
                sasl_dir.join("smtpd.conf"),
                format!(
                    "pwcheck_method: auxprop\nauxprop_plugin: sasldb\nsasldb_path: {}\nmech_list: PLAIN LOGIN\n",
                    db.display()
                ),
            )
            .context(|| "write smtpd.conf".into())?;
            let mut saslpasswd = Command::new("saslpasswd2");
            saslpasswd
                .args(["-c", "-p", "-f"])
                .arg(&db)
                .args(["-u", &opts.hostname, user]);
            let out = output_within(&mut saslpasswd, Some(password.as_bytes()), COMMAND_TIMEOUT)?;
            if !out.status.success() {
                return Err(HarnessError::Other(format!(
                    "saslpasswd2 failed ({}): {} (package sasl2-bin: run scripts/install-test-deps.sh)",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            let mut chown = Command::new("chown");
            chown.arg("postfix:postfix").arg(&db);
            run(&mut chown, COMMAND_TIMEOUT)?;
            main.push(("smtpd_sasl_auth_enable", "yes".into()));
            main.push(("smtpd_sasl_type", "cyrus".into()));
            main.push(("smtpd_sasl_path", "smtpd".into()));
            main.push(("cyrus_sasl_config_path", sasl_dir.display().to_string()));
            main.push(("smtpd_sasl_local_domain", opts.hostname.clone()));
            main.push(("smtpd_sasl_security_options", "noanonymous".into()));
            main.push(("smtpd_tls_auth_only", "yes".into()));
            main.push(("mynetworks", String::new()));
            main.push((
                "smtpd_relay_restrictions",
                "permit_sasl_authenticated, reject".into(),
            ));
        }
        let mut main_cf = String::new();
        for (name, value) in &main {
            main_cf.push_str(&format!("{name} = {value}\n"));
        }
        for (name, value) in &opts.main_cf {
            main_cf.push_str(&format!("{name} = {value}\n"));
        }
        std::fs::write(dir.join("etc/main.cf"), main_cf).context(|| "write main.cf".into())?;

        smtpd_options.extend(opts.smtpd_options.iter().cloned());
        let mut listener = format!("{}:{} inet n - n - - smtpd", ip, self.listen.port());
        for (name, value) in &smtpd_options {
            listener.push_str(&format!("\n  -o {name}={value}"));
        }
        if let Some(smtps) = opts.smtps {
            listener.push_str(&format!(
                "\n{}:{} inet n - n - - smtpd\n  -o syslog_name=postfix/smtps\n  -o smtpd_tls_wrappermode=yes",
                smtps.ip(),
                smtps.port()
            ));
        }
        let master_cf = format!("{listener}\n{MASTER_SERVICES}");
        std::fs::write(dir.join("etc/master.cf"), master_cf)
            .context(|| "write master.cf".into())?;
        Ok(())
    }

    /// Submits the messages over SMTP to its listener (one connection) and waits until all of them
    /// sit in the deferred queue, held for ETRN.
    pub fn queue_messages(&self, messages: &[TestMessage]) -> Result<()> {
        let before = self.queue_len()?;
        for reply in smtp_client::send_all(self.listen, messages)? {
            if reply.code != 250 {
                return Err(HarnessError::Other(format!(
                    "Postfix did not queue a message: {reply}"
                )));
            }
        }
        let expected = before + messages.len();
        poll_until(
            format!("{expected} message(s) held in the deferred queue"),
            Duration::from_secs(20),
            || {
                let entries = self.queue_entries().ok()?;
                let held = entries.iter().all(|e| e.queue_name == "deferred");
                (held && entries.len() >= expected).then_some(())
            },
        )
        .map_err(|e| self.with_log(e))
    }

    fn queue_entries(&self) -> Result<Vec<QueueEntry>> {
        let mut cmd = Command::new("postqueue");
        cmd.arg("-c").arg(self.config_dir()).arg("-j");
        let output = run(&mut cmd, COMMAND_TIMEOUT)?;
        let text = String::from_utf8_lossy(&output.stdout);
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                serde_json::from_str::<QueueEntry>(line)
                    .map_err(|e| HarnessError::Other(format!("postqueue -j line {line:?}: {e}")))
            })
            .collect()
    }

    /// `postqueue -f`: deliver everything queued now, deferred transports included (what a
    /// dial-up Postfix runs when its link comes up).
    pub fn flush_queue(&self) -> Result<()> {
        let mut cmd = Command::new("postqueue");
        cmd.arg("-c").arg(self.config_dir()).arg("-f");
        run(&mut cmd, COMMAND_TIMEOUT).map(|_| ())
    }

    /// `postsuper -d ALL`: empties its queue.
    pub fn delete_queue(&self) -> Result<()> {
        let mut cmd = Command::new("postsuper");
        cmd.arg("-c").arg(self.config_dir()).args(["-d", "ALL"]);
        run(&mut cmd, COMMAND_TIMEOUT).map(|_| ())
    }

    /// Messages in its queue (any state: incoming, active, deferred, hold).
    pub fn queue_len(&self) -> Result<usize> {
        Ok(self.queue_entries()?.len())
    }

    /// Waits until the queue holds exactly `n` messages (e.g. 0 after an ETRN released them).
    pub fn wait_for_queue_len(&self, n: usize, timeout: Duration) -> Result<()> {
        poll_until(format!("Postfix queue length {n}"), timeout, || {
            (self.queue_len().ok()? == n).then_some(())
        })
        .map_err(|e| self.with_log(e))
    }

    /// Its log file so far (empty if not yet written).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("maillog")).unwrap_or_default()
    }

    /// Waits until its log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<()> {
        poll_until(format!("{needle:?} in the Postfix log"), timeout, || {
            self.log_text().contains(needle).then_some(())
        })
    }

    /// SMTP sessions its smtpd has seen begin (`connect from`) and end (`disconnect from`).
    pub fn session_counts(&self) -> (usize, usize) {
        let log = self.log_text();
        let connects = log
            .lines()
            .filter(|l| l.contains(": connect from "))
            .count();
        let disconnects = log
            .lines()
            .filter(|l| l.contains(": disconnect from "))
            .count();
        (connects, disconnects)
    }

    /// Waits until at least one session was seen and every session that began has ended, and its
    /// queue is empty: whatever its clients gave it has been delivered (or bounced) by then.
    pub fn wait_until_idle(&self, timeout: Duration) -> Result<()> {
        poll_until(
            "every Postfix session ended and its queue empty",
            timeout,
            || {
                let (connects, disconnects) = self.session_counts();
                (connects > 0 && connects == disconnects && self.queue_len().ok()? == 0)
                    .then_some(())
            },
        )
        .map_err(|e| self.with_log(e))
    }

    /// How many ETRN commands smtpd has seen, counted from its `disconnect from ...` lines
    /// (`etrn=N` or `etrn=OK/N`): a session counts once it has ended.
    pub fn etrn_count(&self) -> usize {
        self.log_text()
            .lines()
            .filter(|line| line.contains("disconnect from"))
            .flat_map(|line| line.split_whitespace())
            .filter_map(|word| word.strip_prefix("etrn="))
            .filter_map(|count| count.rsplit('/').next()?.parse::<usize>().ok())
            .sum()
    }

    fn with_log(&self, error: HarnessError) -> HarnessError {
        HarnessError::Other(format!(
            "{error}\n--- Postfix log ({}) ---\n{}",
            self.dir.display(),
            self.log_text()
        ))
    }

    fn master_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.join("queue/pid/master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

#[derive(serde::Deserialize)]
struct QueueEntry {
    queue_name: String,
}

impl Drop for PostfixQueue {
    fn drop(&mut self) {
        if !self.started {
            return;
        }
        let pid = self.master_pid();
        let mut stop = Command::new("postfix");
        stop.arg("-c").arg(self.config_dir()).arg("stop");
        let _ = run(&mut stop, COMMAND_TIMEOUT);
        if let Some(pid) = pid {
            let _ = poll_until("Postfix master to exit", Duration::from_secs(5), || {
                (!pid_alive(pid)).then_some(())
            });
            if pid_alive(pid) {
                kill_pid(pid);
            }
        }
    }
}

/// Debian's standard services, unchrooted (the instance directory is not a chroot jail).
const MASTER_SERVICES: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";
