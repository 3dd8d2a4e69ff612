//! A private Postfix queuing server as a process, for tests written outside Rust (the native
//! desktop test drives it from Python).
//!
//! `postfix-queue --deliver-to ADDR [--domain DOMAIN]... [--dns]` (root)
//!
//! Starts a private Postfix that holds mail for the domains (default `office.test`) until ETRN
//! releases it to ADDR, then prints one JSON line `{"listen": "127.0.0.1:PORT", "dir": "...",
//! "dns": "127.0.0.1:PORT" | null}`. With `--dns` it also runs a dnsmasq on 127.0.0.1 that
//! answers for each domain `MX 10 mail.<domain>` and `MX 20 isp.test`, both at 127.0.0.1.
//! Then it reads commands on stdin, one per line, and answers each with one line, `ok ...` or
//! `error: ...`:
//! - `queue N`: submits N messages to `info@<first domain>` and waits until they are held;
//! - `queue-len`: messages in its queue;
//! - `etrn-count`: ETRN commands seen (sessions that have ended).
//!
//! `postfix-queue --smarthost [--defer ADDRESS]...` (root) starts the other role instead: the
//! ISP's smarthost, a private Postfix offering STARTTLS (a certificate for 127.0.0.1 from a
//! fresh test CA) that relays mail for example.net to an smtp-sink it also starts, and answers
//! `450 4.2.0 try later` to each ADDRESS. Its JSON line adds `"ca"`, the CA's PEM file (for
//! `SSL_CERT_FILE`, so the app trusts it), and `"sink"`; the command `sink-count` gives the
//! messages at the sink.
//!
//! End of stdin, SIGTERM or SIGINT stops Postfix, removes its directory and exits.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use postern_tests::harness::{Dnsmasq, PostfixQueue, SmtpSink, TestMessage, TestPki};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

struct Args {
    /// `None` for the smarthost.
    deliver_to: Option<SocketAddr>,
    domains: Vec<String>,
    dns: bool,
    smarthost: bool,
    defer: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut deliver_to = None;
    let mut domains = Vec::new();
    let mut dns = false;
    let (mut smarthost, mut defer) = (false, Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--deliver-to" => {
                let v = value()?;
                deliver_to = Some(
                    v.parse()
                        .map_err(|e| format!("--deliver-to {v}: {e} (want IP:PORT)"))?,
                );
            }
            "--domain" => domains.push(value()?),
            "--dns" => dns = true,
            "--smarthost" => smarthost = true,
            "--defer" => defer.push(value()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if domains.is_empty() {
        domains.push("office.test".into());
    }
    if deliver_to.is_none() && !smarthost {
        return Err("--deliver-to IP:PORT (or --smarthost) is required".into());
    }
    Ok(Args {
        deliver_to,
        domains,
        dns,
        smarthost,
        defer,
    })
}

fn answer(peer: &Peer, rcpt: &str, sent: &mut usize, line: &str) -> String {
    let queue = &peer.postfix;
    let words: Vec<&str> = line.split_whitespace().collect();
    let result = match words.as_slice() {
        ["queue", n] => match n.parse::<usize>() {
            Ok(n) => {
                let messages: Vec<TestMessage> = (*sent..*sent + n)
                    .map(|i| TestMessage::sized(i, 2_000, &[rcpt]))
                    .collect();
                *sent += n;
                queue.queue_messages(&messages).map(|()| n.to_string())
            }
            Err(e) => return format!("error: queue {n}: {e}"),
        },
        ["queue-len"] => queue.queue_len().map(|n| n.to_string()),
        ["etrn-count"] => Ok(queue.etrn_count().to_string()),
        ["sink-count"] => match &peer.sink {
            Some((sink, _)) => Ok(sink.messages().len().to_string()),
            None => return "error: sink-count needs --smarthost".into(),
        },
        _ => {
            return format!(
                "error: unknown command {line:?} (queue N, queue-len, etrn-count, sink-count)"
            );
        }
    };
    match result {
        Ok(v) => format!("ok {v}"),
        Err(e) => format!("error: {}", e.to_string().replace('\n', " | ")),
    }
}

fn start_dns(domains: &[&str]) -> postern_tests::harness::Result<Dnsmasq> {
    let mut dns = Dnsmasq::builder().host("isp.test", "127.0.0.1");
    for domain in domains {
        let office = format!("mail.{domain}");
        dns = dns
            .mx(domain, &office, 10)
            .mx(domain, "isp.test", 20)
            .host(&office, "127.0.0.1");
    }
    dns.start()
}

/// The running Postfix; for the smarthost also its far end and the folder of its CA.
struct Peer {
    postfix: PostfixQueue,
    sink: Option<(SmtpSink, tempfile::TempDir)>,
}

fn start_queue(args: &Args, domains: &[&str]) -> postern_tests::harness::Result<Peer> {
    let mut builder = PostfixQueue::builder().relay_domains(domains);
    if let Some(to) = args.deliver_to {
        builder = builder.deliver_to(to);
    }
    if !args.smarthost {
        return Ok(Peer {
            postfix: builder.start()?,
            sink: None,
        });
    }
    let sink = SmtpSink::start()?;
    let pki = TestPki::new(&["127.0.0.1"])?;
    let ca_dir = tempfile::Builder::new()
        .prefix("postern-smarthost-ca-")
        .tempdir()
        .map_err(|e| postern_tests::harness::HarnessError::Other(format!("CA folder: {e}")))?;
    pki.write_to(ca_dir.path())?;
    let deferred: Vec<String> = args
        .defer
        .iter()
        .map(|a| format!("{{{a}=450 4.2.0 try later}}"))
        .collect();
    builder = builder
        .relay_domains(&[])
        .deliver_at_once()
        .hostname("smarthost.test")
        .route("example.net", sink.addr())
        .with_starttls(&pki.cert_pem, &pki.key_pem);
    if !deferred.is_empty() {
        builder = builder.main_cf(
            "smtpd_recipient_restrictions",
            &format!(
                "check_recipient_access inline:{{ {} }}, permit_mynetworks, reject",
                deferred.join(", ")
            ),
        );
    }
    let postfix = builder.start()?;
    Ok(Peer {
        postfix,
        sink: Some((sink, ca_dir)),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("postfix-queue: {e}");
            return ExitCode::from(2);
        }
    };
    let domains: Vec<&str> = args.domains.iter().map(String::as_str).collect();
    let peer = match start_queue(&args, &domains) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("postfix-queue: cannot start Postfix: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dns = match args.dns.then(|| start_dns(&domains)).transpose() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("postfix-queue: cannot start dnsmasq: {e}");
            return ExitCode::FAILURE;
        }
    };
    let hello = serde_json::json!({
        "listen": peer.postfix.addr().to_string(),
        "dir": peer.postfix.dir(),
        "dns": dns.as_ref().map(|d| d.addr().to_string()),
        "ca": peer.sink.as_ref().map(|(_, ca)| ca.path().join("ca.pem")),
        "sink": peer.sink.as_ref().map(|(sink, _)| sink.addr().to_string()),
    });
    println!("{hello}");
    let _ = std::io::stdout().flush();

    // stdin is read on a thread; the answers are computed here, next to the signal handlers.
    let (tx, mut rx) = mpsc::channel::<String>(8);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("postfix-queue: cannot install signal handlers");
        return ExitCode::FAILURE;
    };
    let rcpt = format!("info@{}", args.domains[0]);
    let mut sent = 0;
    loop {
        tokio::select! {
            line = rx.recv() => {
                let Some(line) = line else { break };
                // Blocking is fine: signals wait until the command is answered.
                let reply = answer(&peer, &rcpt, &mut sent, &line);
                println!("{reply}");
                let _ = std::io::stdout().flush();
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    drop(dns);
    drop(peer);
    ExitCode::SUCCESS
}
