//! `[[backup_for]]` and `[backup]`: the neighbours whose mail this office holds.

use std::net::SocketAddr;

use toml::Spanned;

use super::names::{dns_name, domain_problem, host};
use super::servers::username;
use super::values::{Bounds, R, duration, port, socket_addrs};
use crate::config::raw::{RawBackup, RawBackupFor};
use crate::config::report::{Problem, Src};
use crate::config::{
    Backup, BackupFor, BackupTarget, DEFAULT_MAX_HOLD, Release, parse_backup_target,
};

/// The ODMR port of RFC 2645.
const ODMR_PORT: u16 = 366;

pub(super) fn backup_for(
    raw: Option<Spanned<Vec<Spanned<RawBackupFor>>>>,
    domains: &[String],
    src: Src<'_>,
) -> R<Vec<BackupFor>> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let mut out: Vec<BackupFor> = Vec::new();
    for entry in raw.into_inner() {
        let table = entry.span();
        let parsed = one(entry, domains, src)?;
        if out.iter().any(|b| b.domain == parsed.domain) {
            return Err(src.at(
                table,
                Problem::new(
                    format!("\"{}\" has two [[backup_for]] entries", parsed.domain),
                    "keep one [[backup_for]] per domain and remove the other",
                ),
            ));
        }
        out.push(parsed);
    }
    Ok(out)
}

fn one(raw: Spanned<RawBackupFor>, domains: &[String], src: Src<'_>) -> R<BackupFor> {
    let table = raw.span();
    let raw = raw.into_inner();
    let Some(domain_raw) = raw.domain else {
        return Err(src.at(
            table,
            Problem::new(
                "this [[backup_for]] has no `domain`",
                "add the neighbour's mail domain, e.g. domain = \"neighbour.example\"",
            ),
        ));
    };
    let domain = dns_name(domain_raw.get_ref(), 2).map_err(|why| {
        src.at(
            domain_raw.span(),
            domain_problem(domain_raw.get_ref(), &why),
        )
    })?;
    if domains.contains(&domain) {
        return Err(src.at(
            domain_raw.span(),
            Problem::new(
                format!("\"{domain}\" is one of the office's own `domains`: a backup MX holds mail for another office"),
                "remove this [[backup_for]], or remove the domain from `domains` if it is the neighbour's",
            ),
        ));
    }
    let deliver_to = match &raw.deliver_to {
        None => BackupTarget::Mx,
        Some(d) => target(d, src)?,
    };
    let release = release(raw.release.as_ref(), table.clone(), src)?;
    let username = raw
        .username
        .as_ref()
        .map(|u| username(u, "username", src))
        .transpose()?;
    if release.contains(&Release::Atrn) && username.is_none() {
        let span = raw.release.as_ref().map_or(table.clone(), |r| r.span());
        return Err(src.at(
            span,
            Problem::new(
                format!("release = [\"atrn\"] for {domain} needs a `username`: ATRN hands the mail only to a logged-in neighbour"),
                "add username = \"neighbour\" and store its password with `posternd secret set neighbour@backup`, or remove \"atrn\" from `release`",
            ),
        ));
    }
    let hold = raw.hold.as_ref().is_none_or(|h| *h.get_ref());
    let max_hold = duration(
        raw.max_hold.as_ref(),
        "max_hold",
        DEFAULT_MAX_HOLD,
        Bounds::positive(),
        src,
    )?;
    Ok(BackupFor {
        domain,
        deliver_to,
        release,
        username,
        hold,
        max_hold,
    })
}

fn target(raw: &Spanned<String>, src: Src<'_>) -> R<BackupTarget> {
    let fail = |why: String| {
        src.at(
            raw.span(),
            Problem::new(
                format!("`deliver_to` is not valid: {why}"),
                "write deliver_to = \"mx\" (the neighbour's own MX hosts, preferred over this \
                 office's) or deliver_to = \"smtp://mail.neighbour.example:25\" (one fixed server)",
            ),
        )
    };
    match parse_backup_target(raw.get_ref()).map_err(fail)? {
        BackupTarget::Mx => Ok(BackupTarget::Mx),
        BackupTarget::Smtp { host: h, port } => {
            let h = host(&h).map_err(|why| fail(format!("the host \"{h}\": {why}")))?;
            Ok(BackupTarget::Smtp { host: h, port })
        }
    }
}

fn release(
    raw: Option<&Spanned<Vec<Spanned<String>>>>,
    table: std::ops::Range<usize>,
    src: Src<'_>,
) -> R<Vec<Release>> {
    const FIX: &str = "write release = [\"etrn\"], [\"atrn\"] or [\"etrn\", \"atrn\"]";
    let Some(raw) = raw else {
        return Err(src.at(
            table,
            Problem::new(
                "this [[backup_for]] has no `release`: the neighbour needs a way to ask for its mail",
                FIX,
            ),
        ));
    };
    if raw.get_ref().is_empty() {
        return Err(src.at(
            raw.span(),
            Problem::new("`release` is empty: the held mail could never leave", FIX),
        ));
    }
    let mut out = Vec::new();
    for item in raw.get_ref() {
        let r = match item.get_ref().as_str() {
            "etrn" => Release::Etrn,
            "atrn" => Release::Atrn,
            other => {
                return Err(src.at(
                    item.span(),
                    Problem::new(
                        format!("`release`: \"{other}\" is not a way to release mail"),
                        FIX,
                    ),
                ));
            }
        };
        if !out.contains(&r) {
            out.push(r);
        }
    }
    Ok(out)
}

pub(super) fn backup(
    raw: Option<Spanned<RawBackup>>,
    backup_for: &[BackupFor],
    src: Src<'_>,
) -> R<Backup> {
    let defaults = Backup::default();
    let wants_odmr = backup_for.iter().any(|b| b.allows(Release::Atrn));
    let default_odmr = || {
        if wants_odmr {
            vec![SocketAddr::from(([0, 0, 0, 0], ODMR_PORT))]
        } else {
            Vec::new()
        }
    };
    let Some(raw) = raw.map(Spanned::into_inner) else {
        return Ok(Backup {
            odmr_listen: default_odmr(),
            ..defaults
        });
    };
    let odmr_listen = match &raw.odmr_listen {
        None => default_odmr(),
        Some(l) => socket_addrs(l, "odmr_listen", src)?,
    };
    if wants_odmr
        && odmr_listen.is_empty()
        && let Some(l) = &raw.odmr_listen
    {
        return Err(src.at(
            l.span(),
            Problem::new(
                "`odmr_listen` is empty, but a [[backup_for]] allows \"atrn\": the neighbour could not reach the ODMR server",
                "remove the line for the default [\"0.0.0.0:366\"], or remove \"atrn\" from `release`",
            ),
        ));
    }
    let mx_port = match &raw.mx_port {
        None => defaults.mx_port,
        Some(p) => port(p, src, defaults.mx_port)?,
    };
    let etrn_per_minute = match &raw.etrn_per_minute {
        None => defaults.etrn_per_minute,
        Some(n) => u32::try_from(*n.get_ref()).map_err(|_| {
            src.at(
                n.span(),
                Problem::new(
                    format!("`etrn_per_minute` {} is not allowed", n.get_ref()),
                    format!(
                        "write a whole number, e.g. etrn_per_minute = {} (0 = no limit)",
                        defaults.etrn_per_minute
                    ),
                ),
            )
        })?,
    };
    Ok(Backup {
        odmr_listen,
        mx_port,
        etrn_per_minute,
    })
}
