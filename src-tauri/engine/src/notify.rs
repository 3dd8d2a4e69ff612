//! The words of the tray app's desktop notifications: which events are worth one, and what it
//! says. Pure, like [`crate::view`]; the shell only shows them (and limits how often).

use crate::config::Config;
use crate::events::Event;

/// Whether to show desktop notifications: `[desktop] notifications` of the configuration in
/// use (on when there is none yet), unless `POSTERN_NOTIFICATIONS=off` (tests) forces them off.
pub fn notifications_wanted(env: Option<&str>, config: Option<&Config>) -> bool {
    env != Some("off") && config.is_none_or(|c| c.desktop.notifications)
}

/// The events worth a desktop notification: (kind for rate limiting, text). `fetching`: whether
/// a dequeue was running when the event came.
pub fn notification(event: &Event, fetching: bool) -> Option<(&'static str, String)> {
    match event {
        Event::DequeueComplete { server, messages } if *messages > 0 => {
            let from = server.as_deref().unwrap_or("the queuing server");
            Some((
                "released",
                match messages {
                    1 => format!("1 new message released by {from}"),
                    n => format!("{n} new messages released by {from}"),
                },
            ))
        }
        Event::FetchFailed {
            server, meaning, ..
        } => Some((
            "refused",
            format!("Queuing server {server} refused ETRN: {meaning}"),
        )),
        Event::ConnectBackMissing { server, hint, .. } => Some((
            "nothing-arrived",
            format!("{server} accepted ETRN but nothing arrived. {hint}"),
        )),
        Event::LinkChanged { up: false, .. } if fetching => Some((
            "link-lost",
            "The link went down while Postern was fetching mail; it tries again when the link is back"
                .to_string(),
        )),
        Event::Warning { message, .. } => Some(("warning", message.clone())),
        Event::OutboundBounced { to, reply, .. } => Some((
            "bounced",
            format!("Outgoing mail to {to} could not be delivered: {reply}"),
        )),
        Event::OutboundStuck {
            to,
            waiting_minutes,
            reply,
            ..
        } => Some((
            "stuck",
            format!(
                "Outgoing mail to {} has waited {} h although the link is up: {reply}. See the Queue window",
                to.join(", "),
                waiting_minutes / 60
            ),
        )),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn notifications_say_what_happened() {
        let released = Event::DequeueComplete {
            server: Some("mail.isp.example:25".into()),
            messages: 3,
        };
        let lost = Event::LinkChanged {
            up: false,
            reason: "probe failed".into(),
        };

        assert_eq!(
            notification(&released, false),
            Some((
                "released",
                "3 new messages released by mail.isp.example:25".into()
            ))
        );
        assert_eq!(notification(&lost, false), None);
        assert_eq!(notification(&lost, true).map(|(k, _)| k), Some("link-lost"));
        assert_eq!(notification(&Event::Paused, false), None);
    }

    #[test]
    fn outgoing_mail_that_bounced_or_is_stuck_is_worth_a_notification() {
        let bounced = Event::OutboundBounced {
            id: "q1".into(),
            to: "bad@example.net".into(),
            reply: "550 5.1.1 no such user".into(),
            dsn_sent: true,
        };
        let stuck = Event::OutboundStuck {
            id: "q2".into(),
            to: vec!["slow@example.net".into()],
            waiting_minutes: 75,
            reply: "450 4.2.0 try later".into(),
        };
        let delivered = Event::OutboundDelivered {
            id: "q3".into(),
            to: "good@example.net".into(),
            via: "smtp://smtp.isp.example:587".into(),
            reply: "250 ok".into(),
        };

        assert_eq!(
            notification(&bounced, false),
            Some((
                "bounced",
                "Outgoing mail to bad@example.net could not be delivered: 550 5.1.1 no such user"
                    .into()
            ))
        );
        assert_eq!(
            notification(&stuck, false),
            Some((
                "stuck",
                "Outgoing mail to slow@example.net has waited 1 h although the link is up: \
                 450 4.2.0 try later. See the Queue window"
                    .into()
            ))
        );
        assert_eq!(notification(&delivered, false), None);
    }

    #[test]
    fn notifications_follow_the_config_unless_forced_off() {
        let text = "domains = [\"office.test\"]\n[[queue_servers]]\nhost = \"isp.test\"\n\
                    [inbound]\ndeliver = \"maildir:/tmp/m\"\n";
        let on = Config::parse(text, std::path::Path::new("t.toml")).unwrap();
        let mut off = on.clone();
        off.desktop.notifications = false;

        let cases = [
            (None, None, true),
            (None, Some(&on), true),
            (None, Some(&off), false),
            (Some("off"), Some(&on), false),
            (Some("off"), None, false),
            (Some("on"), Some(&on), true),
        ];

        for (env, config, want) in cases {
            assert_eq!(notifications_wanted(env, config), want, "{env:?}");
        }
    }
}
