//! What every protocol does before it asks: the connection, EHLO, STARTTLS and AUTH
//! ([`negotiate`]), and the outcome of a session that failed on the way ([`failure_outcome`]).

use std::sync::Arc;

use crate::config::{QueueServer, TlsMode};
use crate::outcome::{Disposition, Outcome};
use crate::secrets::SecretStore;
use crate::smtp::client::{ClientError, ClientOptions, SmtpClient};
use crate::smtp_server::SessionContext;
use crate::tls::TrustPolicy;

/// What a dequeue needs besides the server entry.
#[derive(Clone)]
pub struct DequeueContext {
    /// Our name in EHLO.
    pub helo_name: String,
    pub secrets: Arc<dyn SecretStore>,
    /// Where ATRN/TURN put the mail they receive (the inbound listener's session context).
    pub inbound: Option<Arc<SessionContext>>,
}

/// `host:port` as shown to users (an IPv6 host in brackets).
pub fn server_label(server: &QueueServer) -> String {
    if server.host.contains(':') {
        format!("[{}]:{}", server.host, server.port)
    } else {
        format!("{}:{}", server.host, server.port)
    }
}

pub fn client_options(server: &QueueServer, helo_name: &str) -> ClientOptions {
    ClientOptions {
        host: server.host.clone(),
        port: server.port,
        timeout: server.timeout,
        helo_name: helo_name.to_string(),
        trust: TrustPolicy {
            ca_file: server.tls_ca.clone(),
            fingerprint: server.tls_fingerprint,
        },
        connect_addr: None,
    }
}

/// Connects and gets the session ready for the dequeue command: EHLO, STARTTLS according to
/// `tls` (with `required`, nothing else is sent when TLS cannot be had), AUTH when configured.
pub async fn negotiate(
    server: &QueueServer,
    ctx: &DequeueContext,
) -> Result<SmtpClient, ClientError> {
    let opts = client_options(server, &ctx.helo_name);
    let mut client = SmtpClient::connect(&opts).await?;
    client.hello().await?;
    let offers_tls = client.capabilities().has("STARTTLS");
    match server.tls {
        TlsMode::Off => {}
        TlsMode::Required if !offers_tls => {
            let label = opts.server();
            client.quit().await;
            return Err(ClientError::StartTlsMissing { server: label });
        }
        TlsMode::Required => {
            client.start_tls().await?;
        }
        TlsMode::Opportunistic if offers_tls => {
            if let Err(e) = client.start_tls().await {
                // Without a login there is nothing to protect but privacy; with one, a failed
                // verification may be an attacker in the middle: fail closed.
                if server.username.is_some() || !matches!(e, ClientError::Tls { .. }) {
                    return Err(e);
                }
                tracing::warn!(
                    server = %opts.server(),
                    "TLS failed ({e}); going on without TLS since tls = \"opportunistic\" and no login is configured"
                );
                client = SmtpClient::connect(&opts).await?;
                client.hello().await?;
            }
        }
        TlsMode::Opportunistic => {}
    }
    if let Some(name) = server.secret_name() {
        if !client.is_tls() && !server.allow_plaintext_auth {
            let label = opts.server();
            client.quit().await;
            return Err(ClientError::PlaintextAuth { server: label });
        }
        let password = crate::secrets::get_password(ctx.secrets.clone(), name).await?;
        let username = server.username.clone().unwrap_or_default();
        let cleartext_ok = client.is_tls() || server.allow_plaintext_auth;
        let mechanism = client
            .authenticate(&username, &password, cleartext_ok)
            .await?;
        tracing::debug!(server = %opts.server(), "logged in with {}", mechanism.name());
    }
    Ok(client)
}

/// The outcome for `domain` when the session failed before or while asking for it.
pub fn failure_outcome(server: &str, domain: &str, error: &ClientError) -> Outcome {
    use Disposition::*;
    let (step, code, disposition, meaning, fix): (&str, Option<u16>, Disposition, String, Option<String>) =
        match error {
            ClientError::Connect { .. } => (
                "connect",
                None,
                Retry,
                "the queuing server could not be reached".into(),
                Some("check host and port in postern.toml and that the internet link is up; Postern tries again".into()),
            ),
            ClientError::Timeout { after, step, .. } => (
                "timeout",
                None,
                Retry,
                format!("the queuing server did not answer within {} s ({step})", after.as_secs()),
                Some("check that host and port point to an SMTP server (a firewall may swallow the connection); Postern tries again".into()),
            ),
            ClientError::Closed { .. } | ClientError::Io { .. } => (
                "connection",
                None,
                Retry,
                "the connection to the queuing server broke".into(),
                Some("nothing to do if it happens once: Postern tries again".into()),
            ),
            ClientError::Protocol { step, .. } if step.starts_with("AUTH") => (
                "AUTH",
                None,
                Permanent,
                "the login with the queuing server failed".into(),
                Some("check `username` and the stored password; if they are right, the server did not prove it knows the password (SCRAM), so it may not be your ISP's server: check `host`".into()),
            ),
            ClientError::Protocol { .. } => (
                "protocol",
                None,
                Permanent,
                "the server at this address does not speak SMTP correctly".into(),
                Some("check host and port of the queue server in postern.toml".into()),
            ),
            ClientError::Greeting { reply, .. } => (
                "greeting",
                Some(reply.code),
                if reply.is_transient() { Retry } else { Permanent },
                "the queuing server refused the session".into(),
                Some("ask your ISP whether your address may connect to the queuing server".into()),
            ),
            ClientError::StartTlsMissing { .. } => (
                "STARTTLS",
                None,
                Permanent,
                "the queuing server does not offer STARTTLS, so nothing was sent (tls = \"required\")".into(),
                Some("ask your ISP to enable STARTTLS, or set tls = \"opportunistic\" if an unencrypted connection is acceptable".into()),
            ),
            ClientError::StartTlsRefused { reply, .. } => (
                "STARTTLS",
                Some(reply.code),
                if reply.is_transient() { Retry } else { Permanent },
                "the queuing server offered STARTTLS but refused it".into(),
                Some("ask your ISP to check its TLS set-up".into()),
            ),
            ClientError::Tls { .. } | ClientError::TlsSetup(_) => (
                "TLS",
                None,
                Permanent,
                "the secure connection to the queuing server could not be set up".into(),
                Some("if your ISP uses its own or a self-signed certificate, set tls_ca to its CA file or tls_fingerprint to the certificate's SHA-256 (see README)".into()),
            ),
            ClientError::AuthUnavailable { .. } => (
                "AUTH",
                None,
                Permanent,
                "the queuing server offers no login method Postern supports".into(),
                Some("ask your ISP which login methods the server supports, or remove `username` if none is needed".into()),
            ),
            ClientError::AuthRefused { reply, .. } => (
                "AUTH",
                Some(reply.code),
                if reply.is_transient() { Retry } else { Permanent },
                "the queuing server refused the login".into(),
                Some("check `username` and store the right password with `posternd secret set USERNAME@HOST`".into()),
            ),
            ClientError::PlaintextAuth { .. } => (
                "AUTH",
                None,
                Permanent,
                "the password would travel unencrypted, so Postern did not log in".into(),
                Some("use tls = \"required\", or set allow_plaintext_auth = true only if the link to the server is trusted".into()),
            ),
            ClientError::Secret(_) => (
                "password",
                None,
                Permanent,
                "the password for the queuing server could not be read".into(),
                Some(error.to_string()),
            ),
        };
    Outcome {
        server: server.to_string(),
        domain: domain.to_string(),
        step: step.to_string(),
        code,
        text: error.to_string(),
        disposition,
        meaning,
        fix,
        pending: None,
        received: None,
    }
}
