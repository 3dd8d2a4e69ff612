//! From [`raw`](super::raw) to [`Config`]: defaults filled in, every value checked, every problem
//! placed at the value (or the table) it comes from. One file per part of the file: the domains
//! ([`names`]), `[[queue_servers]]` ([`servers`]), `[inbound]`, `[outbound]`, `[link]` and
//! `[dns]` ([`link`]), `[[backup_for]]` and `[backup]` ([`backup`]); the checks they share are in [`values`].

mod backup;
mod inbound;
mod journal;
mod link;
mod names;
mod outbound;
mod servers;
mod values;

#[cfg(test)]
pub(super) use inbound::parse_size;
#[cfg(test)]
pub(super) use names::dns_name;

use toml::Spanned;

use crate::config::raw::{RawConfig, RawDesktop};
use crate::config::report::{Problem, Src};
use crate::config::{Config, Desktop};
use backup::{backup, backup_for};
use inbound::{inbound, state_dir};
use journal::journal;
use link::{dns, link};
use names::domains;
use outbound::outbound;
use servers::queue_servers;
use values::R;

pub(super) fn convert(raw: RawConfig, src: Src<'_>) -> R<Config> {
    let domains = domains(raw.domains, src)?;
    let queue_servers = queue_servers(raw.queue_servers, src)?;
    let Some(inbound) = raw.inbound else {
        return Err(src.whole(Problem::new(
            "there is no [inbound] section: Postern needs to know where to put the mail it receives",
            "add an [inbound] section at the end of the file: a line [inbound] followed by \
             deliver = \"maildir:/srv/mail/Maildir\" (or deliver = \"smtp://192.168.1.10:25\")",
        )));
    };
    let inbound = self::inbound(inbound, &queue_servers, src)?;
    let state_dir = state_dir(raw.state_dir, src)?;
    let outbound = raw
        .outbound
        .map(|o| outbound(o, &state_dir, src))
        .transpose()?;
    let link = link(raw.link, src)?;
    let dns = dns(raw.dns, src)?;
    let desktop = desktop(raw.desktop);
    let journal = journal(raw.journal, src)?;
    let backup_for = backup_for(raw.backup_for, &domains, src)?;
    let backup = backup(raw.backup, &backup_for, src)?;
    Ok(Config {
        domains,
        queue_servers,
        inbound,
        outbound,
        link,
        dns,
        desktop,
        state_dir,
        journal,
        backup_for,
        backup,
    })
}

fn desktop(raw: Option<Spanned<RawDesktop>>) -> Desktop {
    let defaults = Desktop::default();
    let Some(raw) = raw.map(Spanned::into_inner) else {
        return defaults;
    };
    Desktop {
        notifications: raw
            .notifications
            .map_or(defaults.notifications, Spanned::into_inner),
    }
}
