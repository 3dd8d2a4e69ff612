//! The provider in its server role: greeting, EHLO, STARTTLS, AUTH, ATRN/TURN.

use tokio::net::TcpStream;

use super::io::{Conn, IoError};
use super::model::{AuthAttempt, AuthOutcome, Fault, Mechanism, Shared, User};
use super::relay;
use super::sasl::{self, ScramError, ScramServer};

pub(super) async fn run(stream: TcpStream, id: u64, shared: &Shared) {
    let mut conn = Conn::new(stream, id, shared);
    let mut shutdown = shared.shutdown.clone();
    let result = tokio::select! {
        _ = shutdown.wait_for(|stop| *stop) => Ok(()),
        r = session(&mut conn) => r,
    };
    if let Err(e) = result {
        conn.log_provider(&format!("[{e}]"));
    }
}

#[derive(Default)]
struct Session {
    /// Some(true) after EHLO, Some(false) after HELO.
    greeted: Option<bool>,
    user: Option<User>,
}

enum Flow {
    Continue,
    End,
}

async fn session(conn: &mut Conn<'_>) -> Result<(), IoError> {
    let hostname = conn.shared.config.hostname.clone();
    conn.send_line(&format!("220 {hostname} ESMTP ODMR test provider"))
        .await?;
    let mut session = Session::default();
    loop {
        let line = match conn.read_line().await {
            Ok(line) => line,
            Err(IoError::TooLong) => {
                conn.send_line("500 5.5.6 Line too long").await?;
                continue;
            }
            Err(IoError::BareLf) => {
                conn.send_line("500 5.5.2 Lines must end with CRLF (RFC 5321 2.3.8)")
                    .await?;
                continue;
            }
            Err(e @ IoError::Timeout(_)) => {
                let _ = conn
                    .send_line(&format!("421 4.4.2 {hostname} Idle timeout, closing"))
                    .await;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let (verb, args) = match line.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_string()),
            None => (line.to_ascii_uppercase(), String::new()),
        };
        let flow = match verb.as_str() {
            "EHLO" | "HELO" => greet(conn, &mut session, verb == "EHLO", &args).await?,
            "STARTTLS" => starttls(conn, &mut session, &args).await?,
            "AUTH" => auth(conn, &mut session, &args).await?,
            "ATRN" => release(conn, &session, Some(&args), false).await?,
            "TURN" => release(conn, &session, None, !args.is_empty()).await?,
            "NOOP" => reply(conn, "250 2.0.0 OK").await?,
            "RSET" if args.is_empty() => reply(conn, "250 2.0.0 OK").await?,
            "RSET" => reply(conn, "501 5.5.4 Syntax: RSET").await?,
            "QUIT" => {
                conn.send_line(&format!("221 2.0.0 {hostname} closing connection"))
                    .await?;
                conn.close().await;
                Flow::End
            }
            "MAIL" | "RCPT" | "DATA" | "BDAT" | "ETRN" | "VRFY" | "EXPN" | "HELP" | "SEND"
            | "SOML" | "SAML" => {
                reply(
                    conn,
                    &format!("502 5.5.1 {verb} is not implemented by this ODMR provider"),
                )
                .await?
            }
            _ => reply(conn, "500 5.5.2 Command unrecognized").await?,
        };
        if let Flow::End = flow {
            return Ok(());
        }
    }
}

async fn reply(conn: &mut Conn<'_>, line: &str) -> Result<Flow, IoError> {
    conn.send_line(line).await?;
    Ok(Flow::Continue)
}

fn offered_mechanisms(conn: &Conn<'_>) -> Vec<Mechanism> {
    let config = &conn.shared.config;
    config
        .mechanisms
        .iter()
        .copied()
        .filter(|m| !m.is_plaintext() || conn.is_tls() || config.allow_plain_without_tls)
        .collect()
}

async fn greet(
    conn: &mut Conn<'_>,
    session: &mut Session,
    ehlo: bool,
    args: &str,
) -> Result<Flow, IoError> {
    let hostname = conn.shared.config.hostname.clone();
    if args.is_empty() || args.contains(' ') {
        let verb = if ehlo { "EHLO" } else { "HELO" };
        return reply(conn, &format!("501 5.5.4 Syntax: {verb} hostname")).await;
    }
    session.greeted = Some(ehlo);
    if !ehlo {
        return reply(conn, &format!("250 {hostname}")).await;
    }
    let mut lines = vec![format!("{hostname} greets {args}"), "ATRN".to_string()];
    let mechanisms = offered_mechanisms(conn);
    if !mechanisms.is_empty() {
        let names: Vec<&str> = mechanisms.iter().map(|m| m.name()).collect();
        lines.push(format!("AUTH {}", names.join(" ")));
    }
    if conn.shared.tls.is_some() && !conn.is_tls() {
        lines.push("STARTTLS".to_string());
    }
    lines.extend(["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"].map(String::from));
    let last = lines.len() - 1;
    let lines: Vec<String> = lines
        .into_iter()
        .enumerate()
        .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
        .collect();
    conn.send_lines(&lines).await?;
    Ok(Flow::Continue)
}

async fn starttls(conn: &mut Conn<'_>, session: &mut Session, args: &str) -> Result<Flow, IoError> {
    if !args.is_empty() {
        return reply(conn, "501 5.5.4 Syntax: STARTTLS").await;
    }
    if conn.is_tls() {
        return reply(conn, "503 5.5.1 TLS is already active").await;
    }
    let Some(acceptor) = conn.shared.tls.clone() else {
        return reply(conn, "502 5.5.1 STARTTLS is not offered here").await;
    };
    if session.greeted != Some(true) {
        return reply(conn, "503 5.5.1 Send EHLO first").await;
    }
    conn.send_line("220 2.0.0 Ready to start TLS").await?;
    conn.start_tls(&acceptor).await?;
    *session = Session::default();
    Ok(Flow::Continue)
}

/// How an AUTH exchange ended, short of an I/O failure.
enum AuthEnd {
    Success(String),
    Failure(AuthOutcome, Option<String>),
}

async fn auth(conn: &mut Conn<'_>, session: &mut Session, args: &str) -> Result<Flow, IoError> {
    if session.greeted != Some(true) {
        return reply(
            conn,
            "503 5.5.1 Send EHLO first (AUTH is an ESMTP extension)",
        )
        .await;
    }
    if session.user.is_some() {
        return reply(conn, "503 5.5.1 Already authenticated").await;
    }
    let mut words = args.split_whitespace();
    let Some(name) = words.next() else {
        return reply(conn, "501 5.5.4 Syntax: AUTH mechanism [initial-response]").await;
    };
    let initial = words.next().map(str::to_string);
    if words.next().is_some() {
        return reply(conn, "501 5.5.4 Syntax: AUTH mechanism [initial-response]").await;
    }
    let mechanism_name = name.to_ascii_uppercase();
    let record = |conn: &Conn<'_>, user: Option<String>, outcome: AuthOutcome| {
        conn.shared.state().auth.push(AuthAttempt {
            session: conn.session,
            mechanism: mechanism_name.clone(),
            user,
            outcome,
        });
    };
    let configured =
        Mechanism::from_name(name).filter(|m| conn.shared.config.mechanisms.contains(m));
    let Some(mechanism) = configured else {
        record(conn, None, AuthOutcome::UnknownMechanism);
        return reply(conn, "504 5.5.4 Unrecognized authentication type").await;
    };
    if !offered_mechanisms(conn).contains(&mechanism) {
        record(conn, None, AuthOutcome::EncryptionRequired);
        return reply(
            conn,
            "538 5.7.11 Encryption required for requested authentication mechanism",
        )
        .await;
    }
    let initial = match initial.as_deref() {
        None => None,
        Some("=") => Some(Vec::new()),
        Some(text) => match sasl::unb64(text) {
            Some(bytes) => Some(bytes),
            None => {
                record(conn, None, AuthOutcome::Malformed);
                return reply(conn, "501 5.5.2 Cannot decode the initial response").await;
            }
        },
    };
    let end = match mechanism {
        Mechanism::Plain => auth_plain(conn, initial).await?,
        Mechanism::Login => auth_login(conn, initial).await?,
        Mechanism::CramMd5 => auth_cram_md5(conn, initial).await?,
        Mechanism::ScramSha256 => auth_scram(conn, initial).await?,
    };
    match end {
        AuthEnd::Success(user) => {
            record(conn, Some(user.clone()), AuthOutcome::Success);
            session.user = conn
                .shared
                .config
                .users
                .iter()
                .find(|u| u.name == user)
                .cloned();
            reply(conn, "235 2.7.0 Authentication successful").await
        }
        AuthEnd::Failure(outcome, user) => {
            record(conn, user, outcome);
            let line = match outcome {
                AuthOutcome::Cancelled => "501 5.0.0 Authentication cancelled",
                AuthOutcome::Malformed => "501 5.5.2 Malformed authentication response",
                _ => "535 5.7.8 Authentication credentials invalid",
            };
            reply(conn, line).await
        }
    }
}

/// Sends a 334 challenge and returns the decoded response, or how the exchange ended.
async fn challenge(
    conn: &mut Conn<'_>,
    data: &[u8],
) -> Result<Result<Vec<u8>, AuthOutcome>, IoError> {
    conn.send_line(format!("334 {}", sasl::b64(data)).trim_end())
        .await?;
    let line = conn.read_line().await?;
    if line == "*" {
        return Ok(Err(AuthOutcome::Cancelled));
    }
    Ok(sasl::unb64(&line).ok_or(AuthOutcome::Malformed))
}

fn check_password(conn: &Conn<'_>, user: &str, password: &[u8]) -> bool {
    conn.shared
        .config
        .users
        .iter()
        .any(|u| u.name == user && sasl::constant_time_eq(u.password.as_bytes(), password))
}

macro_rules! step {
    ($e:expr) => {
        match $e {
            Ok(value) => value,
            Err(outcome) => return Ok(AuthEnd::Failure(outcome, None)),
        }
    };
}

async fn auth_plain(conn: &mut Conn<'_>, initial: Option<Vec<u8>>) -> Result<AuthEnd, IoError> {
    let response = match initial {
        Some(r) => r,
        None => step!(challenge(conn, b"").await?),
    };
    let parts: Vec<&[u8]> = response.split(|&b| b == 0).collect();
    let [authzid, authcid, password] = parts.as_slice() else {
        return Ok(AuthEnd::Failure(AuthOutcome::Malformed, None));
    };
    let (Ok(authzid), Ok(authcid)) = (std::str::from_utf8(authzid), std::str::from_utf8(authcid))
    else {
        return Ok(AuthEnd::Failure(AuthOutcome::Malformed, None));
    };
    let user = authcid.to_string();
    if (!authzid.is_empty() && authzid != authcid) || !check_password(conn, authcid, password) {
        return Ok(AuthEnd::Failure(AuthOutcome::BadCredentials, Some(user)));
    }
    Ok(AuthEnd::Success(user))
}

async fn auth_login(conn: &mut Conn<'_>, initial: Option<Vec<u8>>) -> Result<AuthEnd, IoError> {
    let user = match initial {
        Some(u) => u,
        None => step!(challenge(conn, b"Username:").await?),
    };
    let Ok(user) = String::from_utf8(user) else {
        return Ok(AuthEnd::Failure(AuthOutcome::Malformed, None));
    };
    let password = match challenge(conn, b"Password:").await? {
        Ok(p) => p,
        Err(outcome) => return Ok(AuthEnd::Failure(outcome, Some(user))),
    };
    if !check_password(conn, &user, &password) {
        return Ok(AuthEnd::Failure(AuthOutcome::BadCredentials, Some(user)));
    }
    Ok(AuthEnd::Success(user))
}

async fn auth_cram_md5(conn: &mut Conn<'_>, initial: Option<Vec<u8>>) -> Result<AuthEnd, IoError> {
    // RFC 2195: the server speaks first, so an initial response is a protocol error.
    if initial.is_some() {
        return Ok(AuthEnd::Failure(AuthOutcome::Malformed, None));
    }
    let random = u64::from_be_bytes(sasl::random_bytes(8).try_into().unwrap_or([0; 8]));
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let text = format!("<{random}.{stamp}@{}>", conn.shared.config.hostname);
    let response = step!(challenge(conn, text.as_bytes()).await?);
    let Ok(response) = String::from_utf8(response) else {
        return Ok(AuthEnd::Failure(AuthOutcome::Malformed, None));
    };
    let Some((user, digest)) = response.rsplit_once(' ') else {
        return Ok(AuthEnd::Failure(AuthOutcome::Malformed, None));
    };
    let user = user.to_string();
    let well_formed = digest.len() == 32
        && digest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !well_formed {
        return Ok(AuthEnd::Failure(AuthOutcome::Malformed, Some(user)));
    }
    let ok = conn.shared.config.users.iter().any(|u| {
        u.name == user
            && sasl::constant_time_eq(
                sasl::cram_md5_hex(&u.password, &text).as_bytes(),
                digest.as_bytes(),
            )
    });
    if !ok {
        return Ok(AuthEnd::Failure(AuthOutcome::BadCredentials, Some(user)));
    }
    Ok(AuthEnd::Success(user))
}

async fn auth_scram(conn: &mut Conn<'_>, initial: Option<Vec<u8>>) -> Result<AuthEnd, IoError> {
    let client_first = match initial {
        Some(r) => r,
        None => step!(challenge(conn, b"").await?),
    };
    let Ok(client_first) = String::from_utf8(client_first) else {
        return Ok(AuthEnd::Failure(AuthOutcome::Malformed, None));
    };
    let users = conn.shared.config.users.clone();
    let started = ScramServer::start(&client_first, |name| {
        users
            .iter()
            .find(|u| u.name == name)
            .map(|u| u.password.clone())
    });
    let (scram, server_first) = match started {
        Ok(s) => s,
        Err(_) => return Ok(AuthEnd::Failure(AuthOutcome::Malformed, None)),
    };
    let user = scram.user().to_string();
    let fail = |outcome| Ok(AuthEnd::Failure(outcome, Some(user.clone())));
    let client_final = match challenge(conn, server_first.as_bytes()).await? {
        Ok(r) => r,
        Err(outcome) => return fail(outcome),
    };
    let Ok(client_final) = String::from_utf8(client_final) else {
        return fail(AuthOutcome::Malformed);
    };
    let server_final = match scram.finish(&client_final) {
        Ok(v) => v,
        Err(ScramError::BadCredentials) => return fail(AuthOutcome::BadCredentials),
        Err(ScramError::Malformed(_)) => return fail(AuthOutcome::Malformed),
    };
    // RFC 4954 §4: the server-final message goes in a 334; the client answers with an empty line.
    match challenge(conn, server_final.as_bytes()).await? {
        Ok(ack) if ack.is_empty() => Ok(AuthEnd::Success(user)),
        Ok(_) => fail(AuthOutcome::Malformed),
        Err(outcome) => fail(outcome),
    }
}

/// Parses `d1,d2,...` (RFC 2645 §4.2); None on a syntax error.
fn parse_domains(args: &str) -> Option<Vec<String>> {
    args.split(',')
        .map(|d| {
            let d = d.trim();
            let valid = !d.is_empty()
                && !d.starts_with('.')
                && !d.ends_with('.')
                && d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            valid.then(|| d.to_ascii_lowercase())
        })
        .collect()
}

/// Releases the domains' mail to the rest of the session on success; frees them on drop.
struct DomainLock<'a> {
    shared: &'a Shared,
    domains: Vec<String>,
}

impl Drop for DomainLock<'_> {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        for d in &self.domains {
            state.busy_domains.remove(d);
        }
    }
}

/// ATRN (`atrn_args` = Some) or TURN (`turn_has_args` tells a TURN with arguments).
async fn release(
    conn: &mut Conn<'_>,
    session: &Session,
    atrn_args: Option<&str>,
    turn_has_args: bool,
) -> Result<Flow, IoError> {
    let config = &conn.shared.config;
    let is_turn = atrn_args.is_none();
    let verb = if is_turn { "TURN" } else { "ATRN" };
    if is_turn && !config.turn_enabled {
        return reply(conn, "502 5.5.1 TURN is not implemented").await;
    }
    if turn_has_args {
        return reply(conn, "501 5.5.4 Syntax: TURN").await;
    }
    if session.greeted.is_none() {
        return reply(conn, "503 5.5.1 Send EHLO first").await;
    }
    let Some(user) = session.user.clone() else {
        return reply(conn, "530 5.7.0 Authentication required").await;
    };
    let user_domains: Vec<String> = user
        .domains
        .iter()
        .map(|d| d.to_ascii_lowercase())
        .collect();
    let domains = match atrn_args {
        Some(args) if !args.is_empty() => match parse_domains(args) {
            Some(d) => d,
            None => return reply(conn, "501 5.5.4 Syntax: ATRN [domain[,domain]...]").await,
        },
        _ => user_domains.clone(),
    };
    match config.fault {
        Some(Fault::Reply451) => {
            return reply(
                conn,
                &format!("451 4.3.0 Unable to process {verb} request now"),
            )
            .await;
        }
        Some(Fault::Reply450) => {
            return reply(conn, &format!("450 4.7.0 {verb} request refused")).await;
        }
        Some(Fault::NotImplemented502) => {
            return reply(conn, "502 5.5.1 Command not implemented").await;
        }
        _ => {}
    }
    if let Some(d) = domains.iter().find(|d| !user_domains.contains(d)) {
        return reply(
            conn,
            &format!(
                "450 4.7.0 ATRN request refused: {} may not release {d}",
                user.name
            ),
        )
        .await;
    }
    let decision = {
        let mut state = conn.shared.state();
        let has_mail = state.held.iter().any(|e| {
            e.message
                .rcpts
                .iter()
                .any(|r| domains.contains(&super::model::domain_of(r)))
        });
        if let Some(d) = domains.iter().find(|d| state.busy_domains.contains(*d)) {
            Err(format!(
                "451 4.3.0 Mail for {d} is being released by another session; try again later"
            ))
        } else if !has_mail && !is_turn {
            Err("453 4.3.0 You have no mail".to_string())
        } else {
            for d in &domains {
                state.busy_domains.insert(d.clone());
            }
            Ok(())
        }
    };
    if let Err(line) = decision {
        return reply(conn, &line).await;
    }
    let lock = DomainLock {
        shared: conn.shared,
        domains: domains.clone(),
    };
    // The customer may speak again only after our 250 (it then greets as a server), so bytes
    // already here were pipelined after ATRN/TURN, which RFC 2920 §3.1 forbids.
    let early = conn.buffered_input();
    if early > 0 {
        conn.send_line(&format!(
            "554 5.5.0 {verb} must be the last command of a pipelined group ({early} octets followed it)"
        ))
        .await?;
        conn.close().await;
        return Ok(Flow::End);
    }
    let line = if is_turn {
        "250 2.0.0 OK".to_string()
    } else {
        "250 2.0.0 OK now reversing the connection".to_string()
    };
    conn.send_line(&line).await?;
    relay::deliver(conn, &domains).await;
    drop(lock);
    Ok(Flow::End)
}

#[cfg(test)]
mod tests {
    use super::parse_domains;

    #[test]
    fn domain_lists_parse_strictly() {
        assert_eq!(
            parse_domains("a.test,B.test"),
            Some(vec!["a.test".to_string(), "b.test".to_string()])
        );
        assert_eq!(parse_domains("a.test,,b.test"), None);
        assert_eq!(parse_domains("a.test;b.test"), None);
        assert_eq!(parse_domains("@a.test"), None);
    }
}
