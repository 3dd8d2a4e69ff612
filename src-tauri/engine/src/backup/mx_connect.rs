//! Connecting to a neighbour's server the way MTAs deliver to MX hosts (Postfix's
//! `smtp_tls_security_level = may`): STARTTLS when offered, and when the handshake fails (a
//! self-signed certificate, which every Postern has unless given one), the same host again
//! without TLS. Without this, two Postern partners could never release mail to each other: the
//! mail would stay held until `max_hold` and bounce.

use crate::config::TlsMode;
use crate::outbound::smarthost::{Connection, Smarthost};
use crate::smtp::client::{ClientError, SmtpClient};

/// Connects, greets and (when offered) starts TLS, falling back to plain text after a failed
/// handshake. No login: held mail goes to the neighbour's own MX.
pub(super) async fn connect(host: &Smarthost) -> Result<Connection, String> {
    let mut client = SmtpClient::connect(&host.options())
        .await
        .map_err(|e| e.to_string())?;
    client.hello().await.map_err(|e| e.to_string())?;
    if host.tls == TlsMode::Off || !client.capabilities().has("STARTTLS") {
        return Ok(Connection::over(client, host.describe()));
    }
    match client.start_tls().await {
        Ok(_) => Ok(Connection::over(client, host.describe())),
        Err(e @ ClientError::Tls { .. }) => {
            tracing::warn!(
                server = %host.describe(),
                "{e}; delivering without TLS, as senders do with an MX host whose certificate they cannot check"
            );
            let plain = Smarthost {
                tls: TlsMode::Off,
                ..host.clone()
            };
            plain.connect().await.map_err(|f| f.text)
        }
        Err(e) => Err(e.to_string()),
    }
}
