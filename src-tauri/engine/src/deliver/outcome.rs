//! What a delivery step ends in: the message is [`Delivered`], or a [`DeliverError`] says
//! which reply the session gives.

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The office server is unreachable or said 4xx: the sender must keep the message.
    #[error("{0}")]
    Temporary(String),
    /// The office server refused the message for good (5xx).
    #[error("{detail}")]
    Permanent { code: u16, detail: String },
}

impl DeliverError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> DeliverError {
        DeliverError::Io {
            what: what.into(),
            source,
        }
    }

    /// The reply the SMTP session gives for this error.
    pub fn reply(&self) -> (u16, String) {
        match self {
            DeliverError::Io { source, .. } if source.raw_os_error() == Some(28) => (
                452,
                "4.3.1 Insufficient system storage, try again later".into(),
            ),
            DeliverError::Io { .. } => (451, "4.3.0 Local storage error, try again later".into()),
            DeliverError::Temporary(detail) => (451, format!("4.4.1 {detail}; try again later")),
            DeliverError::Permanent { code, detail } => (*code, format!("5.0.0 {detail}")),
        }
    }
}

/// Where a committed message ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// File name in the Maildir, or the office server's reply.
    pub location: String,
    pub size: u64,
}
