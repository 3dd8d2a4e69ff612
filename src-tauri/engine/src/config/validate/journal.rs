//! `[journal]`: how long the mail-flow journal keeps its entries.

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
    Ok(Journal { retention })
}
