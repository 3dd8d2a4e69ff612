//! What the journal writes for each event: its kind and one human line. A dequeue that asked for
//! several domains becomes one entry per domain, so each domain's reply can be found by itself.

use super::types::Kind;
use crate::events::Event;

/// The journal entries for `event`: `(kind, text)`, none for events that only matter live.
pub fn entries_for(event: &Event) -> Vec<(Kind, String)> {
    let one = |kind, text: String| vec![(kind, text)];
    match event {
        Event::Listening { addresses } => {
            one(Kind::Link, format!("listening on {}", addresses.join(", ")))
        }
        Event::FetchStarted {
            server,
            protocol,
            domains,
        } => one(
            Kind::Fetch,
            format!(
                "asking {server} ({}) for {}",
                serde_json::to_value(protocol)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_uppercase))
                    .unwrap_or_default(),
                domains.join(", ")
            ),
        ),
        Event::FetchFinished { outcomes, .. } => outcomes
            .iter()
            .map(|o| {
                let kind = if o.is_success() {
                    Kind::Fetch
                } else {
                    Kind::Problem
                };
                (kind, o.summary())
            })
            .collect(),
        Event::InboundSessionStarted { .. } | Event::InboundSessionEnded { .. } => Vec::new(),
        Event::MessageReceived {
            from,
            to,
            size,
            peer,
            via,
            location,
            ..
        } => one(
            Kind::Message,
            format!(
                "received from <{from}> to {} ({}) from {peer} via {via}, stored in {location}",
                angle_list(to),
                size_text(*size)
            ),
        ),
        Event::MessageRefused {
            peer,
            via,
            code,
            reason,
        } => one(
            Kind::Message,
            format!("refused a message from {peer} via {via}: {code} {reason}"),
        ),
        Event::Warning { message, fix } => one(
            Kind::Problem,
            match fix {
                Some(fix) => format!("{message}. Fix: {fix}"),
                None => message.clone(),
            },
        ),
        Event::LinkChanged { up, reason } => one(
            Kind::Link,
            format!("link {} ({reason})", if *up { "up" } else { "down" }),
        ),
        Event::RetryScheduled {
            server,
            attempt,
            in_seconds,
            domains,
        } => one(
            Kind::Fetch,
            format!(
                "{server}: attempt {attempt} for {} failed; next in {}",
                domains.join(", "),
                humantime::format_duration(std::time::Duration::from_secs(*in_seconds))
            ),
        ),
        Event::FetchFailed {
            server,
            domain,
            code,
            text,
            meaning,
            fix,
        } => {
            let code = code.map(|c| format!("{c} ")).unwrap_or_default();
            let fix = fix
                .as_ref()
                .map(|f| format!(". Fix: {f}"))
                .unwrap_or_default();
            one(
                Kind::Problem,
                format!("{server} {domain}: {code}{text} — {meaning}{fix}"),
            )
        }
        Event::DequeueComplete { server, messages } => one(
            Kind::Fetch,
            match server {
                Some(server) => format!("{messages} messages arrived after asking {server}"),
                None => format!("{messages} messages arrived"),
            },
        ),
        Event::ConnectBackMissing {
            server,
            waited_seconds,
            hint,
            ..
        } => one(
            Kind::Problem,
            format!(
                "{server} accepted the request, but nothing connected back within {waited_seconds} s. {hint}"
            ),
        ),
        Event::ConfigReloaded { changes } if changes.is_empty() => one(
            Kind::Config,
            "configuration reloaded: nothing changed".into(),
        ),
        Event::ConfigReloaded { changes } => one(
            Kind::Config,
            format!("configuration reloaded: {}", changes.join("; ")),
        ),
        Event::Paused => one(Kind::Config, "automatic fetching paused".into()),
        Event::Resumed => one(Kind::Config, "automatic fetching resumed".into()),
        Event::OutboundQueued { id, from, to, size } => one(
            Kind::Message,
            format!(
                "outbound {id} queued from <{from}> to {} ({size} bytes)",
                angle_list(to)
            ),
        ),
        Event::OutboundDelivered { id, to, via, reply } => one(
            Kind::Message,
            format!("outbound {id} to <{to}> delivered via {via}: {reply}"),
        ),
        Event::OutboundDeferred {
            id,
            to,
            reply,
            attempts,
            next_attempt,
        } => one(
            Kind::Message,
            format!(
                "outbound {id} to <{to}> deferred after {attempts} attempt(s): {reply}; next attempt {}",
                next_attempt.as_deref().unwrap_or("when the link is up")
            ),
        ),
        Event::OutboundBounced {
            id,
            to,
            reply,
            dsn_sent,
        } => one(
            Kind::Message,
            format!(
                "outbound {id} to <{to}> bounced: {reply}{}",
                if *dsn_sent {
                    " (DSN sent to the sender)"
                } else {
                    " (no DSN)"
                }
            ),
        ),
        Event::OutboundStuck {
            id,
            to,
            waiting_minutes,
            reply,
        } => one(
            Kind::Problem,
            format!(
                "outbound {id} to {} still undelivered after {waiting_minutes} min online: {reply}",
                angle_list(to)
            ),
        ),
        Event::OutboundDropped { id } => one(
            Kind::Message,
            format!("outbound {id} dropped from the queue by request (no DSN)"),
        ),
        Event::OutboundCommandDone { .. } => Vec::new(),
        Event::BackupAsked { domain, by, held } => one(
            Kind::Backup,
            match held {
                0 => format!("backup MX: {domain} asked for its mail ({by}): nothing held"),
                n => format!("backup MX: {domain} asked for its mail ({by}): {n} held"),
            },
        ),
        Event::BackupReleaseStarted {
            domain,
            trigger,
            held,
            target,
        } => one(
            Kind::Backup,
            format!(
                "backup MX: releasing {held} message(s) held for {domain} to {target} ({trigger})"
            ),
        ),
        Event::BackupDelivered {
            id, to, via, reply, ..
        } => one(
            Kind::Backup,
            format!("held {id} delivered to <{to}> via {via}: {reply}"),
        ),
        Event::BackupReleaseFinished {
            domain,
            delivered,
            deferred,
            bounced,
            problem,
        } => {
            let kind = if problem.is_some() {
                Kind::Problem
            } else {
                Kind::Backup
            };
            one(
                kind,
                format!(
                    "backup MX: {domain}: {delivered} delivered, {deferred} still held, {bounced} returned{}",
                    problem
                        .as_ref()
                        .map(|p| format!("; {p}"))
                        .unwrap_or_default()
                ),
            )
        }
        Event::BackupBounced {
            id,
            domain,
            to,
            reply,
            dsn_sent,
        } => one(
            Kind::Backup,
            format!(
                "held {id} for {domain} to <{to}> returned: {reply}{}",
                if *dsn_sent {
                    " (DSN sent to the sender)"
                } else {
                    " (no DSN)"
                }
            ),
        ),
    }
}

fn angle_list(addresses: &[String]) -> String {
    addresses
        .iter()
        .map(|a| format!("<{a}>"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn size_text(bytes: u64) -> String {
    match bytes {
        b if b >= 1024 * 1024 => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)),
        b if b >= 1024 => format!("{} KB", b.div_ceil(1024)),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Disposition, Outcome};

    fn outcome(domain: &str, disposition: Disposition) -> Outcome {
        Outcome {
            server: "mx2.isp.test:25".into(),
            domain: domain.into(),
            step: format!("ETRN {domain}"),
            code: Some(250),
            text: "Queuing started".into(),
            disposition,
            meaning: "the server delivers".into(),
            fix: None,
            pending: None,
            received: None,
        }
    }

    #[test]
    fn a_dequeue_is_one_entry_per_domain_and_failures_are_problems() {
        let event = Event::FetchFinished {
            server: "mx2.isp.test:25".into(),
            outcomes: vec![
                outcome("office.test", Disposition::Released),
                outcome("branch.test", Disposition::Permanent),
            ],
        };

        let entries = entries_for(&event);

        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].0, Kind::Fetch);
        assert!(entries[0].1.contains("office.test: 250 Queuing started"));
        assert_eq!(entries[1].0, Kind::Problem);
    }

    #[test]
    fn the_neighbours_etrn_and_atrn_and_their_runs_are_backup_rows() {
        let events = [
            Event::BackupAsked {
                domain: "neighbour.example".into(),
                by: "ETRN from 192.0.2.7".into(),
                held: 0,
            },
            Event::BackupAsked {
                domain: "neighbour.example".into(),
                by: "ATRN by neighbour".into(),
                held: 12,
            },
            Event::BackupReleaseStarted {
                domain: "neighbour.example".into(),
                trigger: "ATRN by neighbour".into(),
                held: 12,
                target: "192.0.2.7:366".into(),
            },
            Event::BackupReleaseFinished {
                domain: "neighbour.example".into(),
                delivered: 12,
                deferred: 0,
                bounced: 0,
                problem: None,
            },
        ];

        let entries: Vec<(Kind, String)> = events.iter().flat_map(entries_for).collect();

        assert_eq!(
            entries,
            vec![
                (
                    Kind::Backup,
                    "backup MX: neighbour.example asked for its mail (ETRN from 192.0.2.7): \
                     nothing held"
                        .to_string()
                ),
                (
                    Kind::Backup,
                    "backup MX: neighbour.example asked for its mail (ATRN by neighbour): 12 held"
                        .to_string()
                ),
                (
                    Kind::Backup,
                    "backup MX: releasing 12 message(s) held for neighbour.example to \
                     192.0.2.7:366 (ATRN by neighbour)"
                        .to_string()
                ),
                (
                    Kind::Backup,
                    "backup MX: neighbour.example: 12 delivered, 0 still held, 0 returned"
                        .to_string()
                ),
            ]
        );
    }

    #[test]
    fn a_received_message_names_sender_recipients_size_and_place() {
        let event = Event::MessageReceived {
            id: "1".into(),
            from: "a@outside.test".into(),
            to: vec!["u@office.test".into()],
            size: 2048,
            peer: "192.0.2.1".into(),
            via: "inbound".into(),
            location: "/home/u/Maildir".into(),
        };

        let entries = entries_for(&event);

        assert_eq!(
            entries,
            vec![(
                Kind::Message,
                "received from <a@outside.test> to <u@office.test> (2 KB) from 192.0.2.1 via \
                 inbound, stored in /home/u/Maildir"
                    .to_string()
            )]
        );
    }
}
