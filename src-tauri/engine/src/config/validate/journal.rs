//! `[journal]`: whether the mail-flow journal is kept, and for how long.

use toml::Spanned;

use super::values::{Bounds, R, duration};
use crate::config::Journal;
use crate::config::raw::RawJournal;
use crate::config::report::Src;

pub(super) fn journal(raw: Option<Spanned<RawJournal>>, src: Src<'_>) -> R<Journal> {
    let Some(raw) = raw.map(Spanned::into_inner) else {
        return Ok(Journal::default());
    };
    let retention = duration(
        raw.retention.as_ref(),
        "retention",
        Journal::default().retention,
        Bounds::positive(),
        src,
    )?;
    let enabled = raw
        .enabled
        .map_or(Journal::default().enabled, Spanned::into_inner);
    Ok(Journal { enabled, retention })
}
