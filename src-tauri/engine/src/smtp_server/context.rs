//! What every inbound session is given: its limits ([`ServerSettings`]) and where its mail goes,
//! whom it tells ([`SessionContext`]).

use std::sync::Arc;
use std::time::Duration;

use crate::backup::server::BackupServer;
use crate::config::Config;
use crate::deliver::Delivery;
use crate::events::{Arrival, ArrivalSender, EventSender};

/// `via` of the inbound listener's sessions (mail for the office, from its queuing server).
pub const VIA_INBOUND: &str = "inbound";
/// `via` of the outbound relay's submission listener (mail from the office's computers).
pub const VIA_SUBMISSION: &str = "submission";

/// Limits and names of the inbound sessions.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub hostname: String,
    /// Lower-case domains we accept mail for.
    pub domains: Vec<String>,
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub max_errors: u32,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// Sessions from one client address at a time (the rest get 421), so a few idle
    /// connections cannot take every slot from the queuing server.
    pub max_connections_per_client: usize,
    /// NOOP/RSET/VRFY/EXPN/HELP allowed since the last accepted message.
    pub max_junk_commands: u32,
    /// Ends a session that goes on longer than this, whatever it does.
    pub session_timeout: Option<Duration>,
    /// `None`: the inbound listener, recipients only in `domains`. `Some(networks)`: the
    /// submission listener ([outbound]), any recipient from a client in these networks and
    /// "relaying denied" for everyone else.
    pub relay_from: Option<Vec<ipnet::IpNet>>,
    /// The backup MX (`[[backup_for]]`): recipients in its domains are held in the spool, and
    /// ETRN is answered. `None`: neither (the submission listener, the ATRN turnaround).
    pub backup: Option<Arc<BackupServer>>,
}

impl Default for ServerSettings {
    /// The defaults of `[inbound]` for a host named `localhost` taking no domain (tests and
    /// front ends fill in the rest).
    fn default() -> ServerSettings {
        ServerSettings {
            hostname: "localhost".into(),
            domains: Vec::new(),
            max_message_size: 50 * 1024 * 1024,
            max_recipients: 100,
            max_errors: 20,
            idle_timeout: Duration::from_secs(300),
            max_connections: 50,
            max_connections_per_client: crate::config::defaults::MAX_CONNECTIONS_PER_CLIENT,
            max_junk_commands: crate::config::defaults::MAX_JUNK_COMMANDS,
            session_timeout: Some(crate::config::defaults::MAX_SESSION_TIME),
            relay_from: None,
            backup: None,
        }
    }
}

impl ServerSettings {
    pub fn from_config(config: &Config) -> ServerSettings {
        ServerSettings {
            hostname: config.inbound.hostname.clone(),
            domains: config
                .domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            max_message_size: config.inbound.max_message_size,
            max_recipients: 100,
            max_errors: 20,
            idle_timeout: config.inbound.idle_timeout,
            max_connections: config.inbound.max_connections,
            max_connections_per_client: config.inbound.max_connections_per_client,
            max_junk_commands: config.inbound.max_junk_commands,
            session_timeout: Some(config.inbound.max_session_time),
            relay_from: None,
            backup: None,
        }
    }
}

/// What every session needs.
#[derive(Debug)]
pub struct SessionContext {
    pub settings: ServerSettings,
    pub delivery: Delivery,
    pub events: EventSender,
    /// The supervisor's arrival channel (`None`: nobody counts, e.g. a one-shot test delivery).
    pub arrivals: Option<ArrivalSender>,
    /// STARTTLS, when offered (the listener; not the ATRN turnaround, already in TLS).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl SessionContext {
    /// The inbound sessions of `config`: its limits and its delivery target (prepared now, so a
    /// Maildir that cannot be created is reported at start).
    pub fn from_config(
        config: &Config,
        events: EventSender,
    ) -> Result<SessionContext, crate::deliver::DeliverError> {
        // The office server gets as long as a queuing server would give us, within reason.
        let forward_timeout = config.inbound.idle_timeout.min(Duration::from_secs(120));
        Ok(SessionContext {
            settings: ServerSettings::from_config(config),
            delivery: Delivery::open(
                &config.inbound.deliver,
                &config.inbound.hostname,
                forward_timeout,
            )?,
            events,
            arrivals: None,
            tls: None,
        })
    }

    /// The same, offering STARTTLS with the `[inbound]` certificate (made when missing).
    pub fn with_tls(
        mut self,
        config: &Config,
    ) -> Result<SessionContext, super::tls::InboundTlsError> {
        let server = super::tls::server_config(config)?;
        self.tls = Some(server);
        Ok(self)
    }

    /// The same context, holding mail for the backup MX's domains and answering ETRN.
    pub fn with_backup(mut self, backup: Option<Arc<BackupServer>>) -> SessionContext {
        self.settings.backup = backup;
        self
    }

    /// The same context, reporting arrivals to `arrivals`.
    pub fn with_arrivals(self, arrivals: Option<ArrivalSender>) -> SessionContext {
        SessionContext { arrivals, ..self }
    }

    /// Tells the supervisor what a session did. Only the listener's sessions can be an ETRN
    /// server connecting back; a message over an ATRN/TURN turnaround (`via` "atrn"/"turn")
    /// only counts.
    pub(crate) fn report(&self, via: &str, arrival: Arrival) {
        let Some(arrivals) = &self.arrivals else {
            return;
        };
        let arrival = match (via, arrival) {
            (VIA_INBOUND, arrival) => arrival,
            // Mail from the office's own computers is not mail arriving for the office.
            (VIA_SUBMISSION, _) => return,
            (_, Arrival::MessageReceived) => Arrival::TurnaroundMessage,
            _ => return,
        };
        let _ = arrivals.send(arrival);
    }
}
