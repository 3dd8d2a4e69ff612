//! SMTP replies from a queuing server, and what they mean for the office.
//!
//! Every answer to ETRN (RFC 1985) or to the steps before it becomes an [`Outcome`]: the code
//! and the server's own text, a plain-language meaning, a suggested fix and a [`Disposition`]
//! that tells the supervisor whether to retry. The quirks of real servers (docs/architecture.md,
//! "Protocol facts") are recognised from their texts: Postfix answers `250 Queuing started`
//! whether or not mail waits and `459 <d>: service unavailable` for a domain outside
//! fast_flush_domains; Exim wants `ETRN #domain` and says so with `501 argument must begin
//! with #`.

pub use crate::outcome::{Disposition, Outcome};
use crate::smtp::reply::Reply;

/// The parts of an outcome that depend only on the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meaning {
    pub disposition: Disposition,
    pub meaning: String,
    pub fix: Option<String>,
    pub pending: Option<u64>,
}

impl Meaning {
    fn new(disposition: Disposition, meaning: impl Into<String>, fix: Option<String>) -> Self {
        Meaning {
            disposition,
            meaning: meaning.into(),
            fix,
            pending: None,
        }
    }
}

/// What an ETRN reply means for `domain` (RFC 1985 §5 plus Postfix and Exim behaviour).
pub fn etrn_meaning(reply: &Reply, domain: &str) -> Meaning {
    let text = reply.text().to_ascii_lowercase();
    use Disposition::*;
    match reply.code {
        250 => Meaning::new(
            Released,
            format!(
                "the queuing server started delivering the mail it holds for {domain} to this office \
                 (some servers, e.g. Postfix, say this even when nothing is waiting)"
            ),
            None,
        ),
        251 => Meaning::new(
            NothingWaiting,
            format!("no mail is waiting for {domain} at the queuing server"),
            None,
        ),
        252 => Meaning::new(
            Released,
            format!("mail for {domain} is waiting and the queuing server started delivering it"),
            None,
        ),
        253 => {
            // Not the "2.0.0" of an enhanced status code: Postern's own server says
            // `253 2.0.0 8 messages pending`.
            let pending = first_number(&reply.text_without_status());
            let mut m = Meaning::new(
                Released,
                match pending {
                    Some(n) => format!(
                        "{n} messages for {domain} are waiting and the queuing server started delivering them"
                    ),
                    None => format!(
                        "messages for {domain} are waiting and the queuing server started delivering them"
                    ),
                },
                None,
            );
            m.pending = pending;
            m
        }
        421 => Meaning::new(
            Retry,
            "the queuing server is shutting down or overloaded and closed the session",
            Some("nothing to do: Postern tries again later".into()),
        ),
        // Exim's `458 Already processing`: a run for this domain is going (another ETRN, ours
        // or a neighbour's, started it). The mail is on its way, so this is a success.
        458 if text.contains("already") => Meaning::new(
            Released,
            format!(
                "the queuing server is already delivering the mail for {domain}: the delivery \
                 that is running brings it"
            ),
            None,
        ),
        458 => Meaning::new(
            Retry,
            format!(
                "the queuing server cannot start delivery for {domain} right now (with Postfix: its \
                 flush service is not running, or a postscreen front end answers instead of smtpd)"
            ),
            Some(
                "Postern tries again later; if this persists, ask your ISP to check the flush \
                 service of their queuing server"
                    .into(),
            ),
        ),
        459 => Meaning::new(
            Permanent,
            format!("the queuing server does not hold mail for {domain}"),
            Some(format!(
                "ask your ISP to add {domain} to the backup MX's relay domains and fast_flush_domains \
                 (Postfix) or to its ETRN-enabled domains; check that `domains` in postern.toml is \
                 spelled as in your MX records"
            )),
        ),
        450..=499 => Meaning::new(
            Retry,
            format!("the queuing server refused for now ({})", reply.text()),
            Some("nothing to do: Postern tries again later".into()),
        ),
        500 if text.contains("syntax: etrn") => Meaning::new(
            Permanent,
            "the queuing server did not see a domain in our ETRN command",
            Some("set `node` for this queue server to the name your ISP expects".into()),
        ),
        500 | 502 | 504 => Meaning::new(
            Permanent,
            "the queuing server does not support ETRN",
            Some(
                "ask your ISP to enable ETRN, or use protocol = \"atrn\" if the server offers \
                 ATRN (run `posternd check-mx` to see what it supports)"
                    .into(),
            ),
        ),
        501 if text.contains('#') => Meaning::new(
            Permanent,
            "the queuing server (Exim) wants the ETRN argument to start with #",
            Some(format!("set node = \"#{domain}\" for this queue server in postern.toml")),
        ),
        501 => Meaning::new(
            Permanent,
            "the queuing server did not accept the ETRN argument",
            Some(format!(
                "check the spelling of {domain}, or set `node` to the name your ISP expects"
            )),
        ),
        503 => Meaning::new(
            Permanent,
            "the queuing server refused ETRN at this point of the session (it may want \
             authentication first)",
            Some("set `username` for this queue server and store its password with `posternd secret set`".into()),
        ),
        530 => Meaning::new(
            Permanent,
            "the queuing server requires authentication before ETRN",
            Some("set `username` for this queue server and store its password with `posternd secret set`".into()),
        ),
        554 if text.contains("access denied") || text.contains("etrn command rejected") => {
            Meaning::new(
                Permanent,
                "the queuing server refuses ETRN from this connection",
                Some(
                    "ask your ISP to allow ETRN from your address or your login \
                     (Postfix: smtpd_etrn_restrictions)"
                        .into(),
                ),
            )
        }
        _ if reply.is_positive() => Meaning::new(
            Released,
            format!("the queuing server accepted the request ({})", reply.text()),
            None,
        ),
        _ => Meaning::new(
            Permanent,
            format!("the queuing server refused the request ({})", reply.text()),
            Some("ask your ISP what the reply means for your account".into()),
        ),
    }
}

/// What an ATRN (RFC 2645) or TURN reply means for `domains`.
pub fn atrn_meaning(reply: &Reply, domains: &str, command: &str) -> Meaning {
    use Disposition::*;
    match reply.code {
        250 => Meaning::new(
            Released,
            format!("the queuing server turned the connection around and delivers the mail for {domains} over it"),
            None,
        ),
        450 => Meaning::new(
            Permanent,
            format!("the queuing server refused {command} for {domains}"),
            Some(format!(
                "ask your ISP to allow this login to take the mail of {domains}; check the spelling of `domains`"
            )),
        ),
        451 => Meaning::new(
            Retry,
            "the queuing server cannot hand over the mail right now",
            Some("nothing to do: Postern tries again later".into()),
        ),
        453 => Meaning::new(
            NothingWaiting,
            format!("no mail is waiting for {domains}"),
            None,
        ),
        500 | 502 | 504 => Meaning::new(
            Permanent,
            format!("the queuing server does not support {command}"),
            Some(if command == "ATRN" {
                "use protocol = \"etrn\" if the office is reachable on port 25, or ask your ISP for On-Demand Mail Relay on port 366".into()
            } else {
                "use protocol = \"atrn\" or \"etrn\"; TURN is obsolete and rarely offered".into()
            }),
        ),
        530 => Meaning::new(
            Permanent,
            format!("the queuing server requires a login before {command}"),
            Some("set `username` for this queue server and store its password with `posternd secret set`".into()),
        ),
        400..=499 => Meaning::new(
            Retry,
            format!("the queuing server refused for now ({})", reply.text()),
            Some("nothing to do: Postern tries again later".into()),
        ),
        _ if reply.is_positive() => Meaning::new(
            Released,
            format!("the queuing server accepted {command} ({})", reply.text()),
            None,
        ),
        _ => Meaning::new(
            Permanent,
            format!("the queuing server refused {command} ({})", reply.text()),
            Some("ask your ISP what the reply means for your account".into()),
        ),
    }
}

fn first_number(text: &str) -> Option<u64> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|s| !s.is_empty())
        .and_then(|s| s.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, text: &str) -> Reply {
        Reply {
            code,
            lines: vec![text.to_string()],
        }
    }

    #[test]
    fn every_rfc1985_code_has_a_meaning() {
        let cases = [
            (
                250,
                "OK, queuing for node office.test started",
                Disposition::Released,
            ),
            (
                251,
                "OK, no messages waiting for node office.test",
                Disposition::NothingWaiting,
            ),
            (
                252,
                "OK, pending messages for node office.test started",
                Disposition::Released,
            ),
            (
                253,
                "OK, 14 pending messages for node office.test started",
                Disposition::Released,
            ),
            (
                458,
                "Unable to queue messages for node office.test",
                Disposition::Retry,
            ),
            (
                459,
                "Node office.test not allowed: unknown",
                Disposition::Permanent,
            ),
            (500, "Syntax Error", Disposition::Permanent),
            (501, "Syntax Error in Parameters", Disposition::Permanent),
        ];
        for (code, text, disposition) in cases {
            let m = etrn_meaning(&reply(code, text), "office.test");
            assert_eq!(m.disposition, disposition, "{code}");
            assert!(!m.meaning.is_empty());
        }
    }

    #[test]
    fn every_rfc2645_code_has_a_meaning() {
        let cases = [
            (250, Disposition::Released),
            (450, Disposition::Permanent),
            (451, Disposition::Retry),
            (453, Disposition::NothingWaiting),
            (502, Disposition::Permanent),
            (530, Disposition::Permanent),
        ];
        for (code, disposition) in cases {
            let m = atrn_meaning(&reply(code, "text"), "office.test", "ATRN");
            assert_eq!(m.disposition, disposition, "{code}");
        }
        assert!(
            atrn_meaning(&reply(530, "x"), "d", "ATRN")
                .fix
                .unwrap()
                .contains("username")
        );
    }

    #[test]
    fn count_of_253_is_parsed() {
        let m = etrn_meaning(
            &reply(253, "OK, 14 pending messages for node x started"),
            "x",
        );
        assert_eq!(m.pending, Some(14));
        assert!(m.meaning.starts_with("14 messages"));
    }

    #[test]
    fn count_of_253_after_an_enhanced_status_code_is_the_count() {
        let m = etrn_meaning(
            &reply(253, "2.0.0 8 messages pending, message queue started"),
            "x",
        );

        assert_eq!(m.pending, Some(8));
    }

    #[test]
    fn postfix_459_says_fast_flush_domains() {
        let m = etrn_meaning(
            &reply(459, "<office.test>: service unavailable"),
            "office.test",
        );
        assert_eq!(m.disposition, Disposition::Permanent);
        assert!(m.fix.unwrap().contains("fast_flush_domains"));
    }

    #[test]
    fn exim_501_suggests_a_hash_node() {
        let m = etrn_meaning(&reply(501, "argument must begin with #"), "office.test");
        assert_eq!(
            m.fix.as_deref(),
            Some("set node = \"#office.test\" for this queue server in postern.toml")
        );
    }

    #[test]
    fn exim_458_already_processing_is_a_release_under_way() {
        let m = etrn_meaning(
            &reply(458, "Already processing #office.test"),
            "office.test",
        );
        assert_eq!(m.disposition, Disposition::Released);
        assert!(m.meaning.contains("already delivering"));
    }

    #[test]
    fn postfix_554_access_denied() {
        let r = reply(
            554,
            "5.7.1 <unknown[127.0.0.1]>: Etrn command rejected: Access denied",
        );
        let m = etrn_meaning(&r, "office.test");
        assert_eq!(m.disposition, Disposition::Permanent);
        assert!(m.fix.unwrap().contains("smtpd_etrn_restrictions"));
        assert_eq!(
            r.text_without_status(),
            "<unknown[127.0.0.1]>: Etrn command rejected: Access denied"
        );
    }
}
