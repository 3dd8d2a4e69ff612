//! What the tray and the status header show, as plain data built from [`Status`].
//!
//! The desktop shell renders a [`TrayView`] into a native menu and icon; it adds no wording of
//! its own, so the whole menu of every engine state is unit-tested here without a display.
//! On Linux the tray is a StatusNotifierItem: no click events and no tooltips, so every action
//! must be a menu item.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::link::LinkState;
use crate::outcome::Disposition;
use crate::supervisor::{Command, Status};

/// The tray icon (files `icons/tray/<name>.png`).
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrayIcon {
    Offline,
    Online,
    /// A dequeue is running.
    Busy,
    /// The last dequeue had an error or a warning.
    Attention,
}

/// The windows the shell opens from the menu.
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "WindowName"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// The first window once a config exists ("Open Postern"): link, servers, counts, charts.
    Dashboard,
    Settings,
    Wizard,
    Activity,
    Mx,
    /// The outbound queue, with Retry and Drop.
    Queue,
}

/// What choosing a menu entry does. Each entry carries its own; the shell uses its JSON as the
/// native item's id, so a click needs no table to know what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "do", content = "what", rename_all = "snake_case")]
pub enum MenuAction {
    Engine(Command),
    Open(Window),
    Quit,
    Nothing,
}

impl MenuAction {
    /// The native menu item's id.
    pub fn id(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The action of a clicked item (`None`: not one of ours).
    pub fn from_id(id: &str) -> Option<MenuAction> {
        serde_json::from_str(id).ok()
    }
}

/// One entry of the tray menu.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MenuEntry {
    Item {
        label: String,
        enabled: bool,
        action: MenuAction,
    },
    Separator,
}

impl MenuEntry {
    fn item(label: &str, enabled: bool, action: MenuAction) -> MenuEntry {
        MenuEntry::Item {
            label: label.to_string(),
            enabled,
            action,
        }
    }

    /// The menu of a configured or unconfigured engine; `engine`: whether the engine's own
    /// entries (fetch, pause) can be chosen.
    fn menu(status_line: &str, can_fetch: bool, paused: bool, engine: bool) -> Vec<MenuEntry> {
        use MenuAction::{Engine, Open};
        vec![
            MenuEntry::item(status_line, false, MenuAction::Nothing),
            MenuEntry::item("Open Postern", true, Open(Window::Dashboard)),
            MenuEntry::item("Fetch mail now", can_fetch, Engine(Command::FetchNow)),
            if paused {
                MenuEntry::item("Resume automatic fetching", engine, Engine(Command::Resume))
            } else {
                MenuEntry::item("Pause automatic fetching", engine, Engine(Command::Pause))
            },
            MenuEntry::item("Check MX records…", true, Open(Window::Mx)),
            MenuEntry::item("Settings…", true, Open(Window::Settings)),
            MenuEntry::item("Activity…", true, Open(Window::Activity)),
            MenuEntry::Separator,
            MenuEntry::item("Quit", true, MenuAction::Quit),
        ]
    }
}

/// The tray: icon, tooltip (where the OS shows one) and the whole menu.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrayView {
    pub icon: TrayIcon,
    pub tooltip: String,
    /// "Online · last fetch 10:42 · 12 messages"; also the menu's first (disabled) entry.
    pub status_line: String,
    pub items: Vec<MenuEntry>,
}

/// One failed dequeue, for the status header and the tooltip.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub server: String,
    pub domain: String,
    pub meaning: String,
    pub fix: Option<String>,
}

/// The status header of the windows: the tray's line plus details.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusView {
    pub icon: TrayIcon,
    pub status_line: String,
    pub paused: bool,
    pub fetching: bool,
    pub messages_received: u64,
    /// "10:42" in the engine's local time; `None` before the first fetch.
    pub last_fetch: Option<String>,
    /// The earliest automatic retry of a failed dequeue ("10:50").
    pub next_retry: Option<String>,
    pub problems: Vec<Problem>,
    /// Messages waiting in the outbound queue; `None` without `[outbound]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub outbound_queued: Option<u64>,
}

fn problems(status: &Status) -> Vec<Problem> {
    status
        .last_fetch
        .iter()
        .filter(|o| matches!(o.disposition, Disposition::Retry | Disposition::Permanent))
        .map(|o| Problem {
            server: o.server.clone(),
            domain: o.domain.clone(),
            meaning: o.meaning.clone(),
            fix: o.fix.clone(),
        })
        .collect()
}

/// "10:42" from an RFC 3339 time, in the offset it was written with (the engine's local time).
fn clock(rfc3339: &str) -> Option<String> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.format("%H:%M").to_string())
}

fn messages(n: u64) -> String {
    if n == 1 {
        "1 message".to_string()
    } else {
        format!("{n} messages")
    }
}

fn awaiting_mail(status: &Status) -> bool {
    status.servers.iter().any(|s| s.awaiting_connect_back)
}

fn next_retry(status: &Status) -> Option<String> {
    status
        .servers
        .iter()
        .filter_map(|s| s.next_retry_at.as_deref())
        .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .min()
        .map(|t| t.format("%H:%M").to_string())
}

/// "just now", "5 min ago", "2 h ago", "3 d ago".
fn ago(then: &str, now: DateTime<FixedOffset>) -> Option<String> {
    let then = DateTime::parse_from_rfc3339(then).ok()?;
    let minutes = (now - then).num_minutes().max(0);
    Some(match minutes {
        0 => "just now".to_string(),
        m if m < 60 => format!("{m} min ago"),
        m if m < 48 * 60 => format!("{} h ago", m / 60),
        m => format!("{} d ago", m / (24 * 60)),
    })
}

/// One line per backed-up domain: "neighbour.example: 12 held, fetched 2 h ago (ETRN)".
pub fn backup_lines(status: &Status, now: DateTime<FixedOffset>) -> Vec<String> {
    status
        .backup
        .iter()
        .map(|b| {
            let held = match b.held {
                0 => "nothing held".to_string(),
                n => format!("{n} held"),
            };
            let fetched = match b.last_fetch.as_deref().and_then(|t| ago(t, now)) {
                Some(ago) => {
                    let how = b
                        .last_fetch_by
                        .as_deref()
                        .and_then(|by| by.split_whitespace().next())
                        .map(|how| format!(" ({how})"))
                        .unwrap_or_default();
                    format!("fetched {ago}{how}")
                }
                None => "never fetched".to_string(),
            };
            let mut line = format!("{}: {held}, {fetched}", b.domain);
            if !b.configured {
                line.push_str(" · no longer backed up: goes back to the senders");
            } else if b.needs_attention {
                let when = b
                    .returns_at
                    .as_deref()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.format(" %-d %b %H:%M").to_string())
                    .unwrap_or_default();
                line.push_str(&format!(" · goes back to the senders from{when}"));
            }
            line
        })
        .collect()
}

fn icon_of(status: &Status) -> TrayIcon {
    if status.fetching || awaiting_mail(status) {
        TrayIcon::Busy
    } else if status.link != LinkState::Up {
        TrayIcon::Offline
    } else if !problems(status).is_empty() || status.backup.iter().any(|b| b.needs_attention) {
        TrayIcon::Attention
    } else {
        TrayIcon::Online
    }
}

fn status_line(status: &Status, icon: TrayIcon) -> String {
    let state = match icon {
        _ if status.paused && icon != TrayIcon::Busy => "Paused",
        TrayIcon::Busy if status.fetching => "Fetching mail…",
        TrayIcon::Busy => "Waiting for the released mail…",
        TrayIcon::Offline if status.link == LinkState::Unknown => "Checking the link…",
        TrayIcon::Offline => "Offline",
        TrayIcon::Attention => "Needs attention",
        TrayIcon::Online => "Online",
    };
    let last = match status.last_fetch_at.as_deref().and_then(clock) {
        Some(t) => format!("last fetch {t}"),
        None => "no fetch yet".to_string(),
    };
    let mut line = format!("{state} · {last} · {}", messages(status.messages_received));
    if let Some(n) = status.outbound_queued.filter(|n| *n > 0) {
        line.push_str(&format!(" · {n} outgoing queued"));
    }
    line
}

impl StatusView {
    pub fn from_status(status: &Status) -> StatusView {
        let icon = icon_of(status);
        StatusView {
            icon,
            status_line: status_line(status, icon),
            paused: status.paused,
            fetching: status.fetching,
            messages_received: status.messages_received,
            last_fetch: status.last_fetch_at.as_deref().and_then(clock),
            next_retry: next_retry(status),
            problems: problems(status),
            outbound_queued: status.outbound_queued,
        }
    }
}

impl TrayView {
    pub fn from_status(status: &Status) -> TrayView {
        TrayView::from_status_at(status, chrono::Local::now().fixed_offset())
    }

    /// As of `now`, which the backed-up domains' "fetched 2 h ago" is counted from.
    pub fn from_status_at(status: &Status, now: DateTime<FixedOffset>) -> TrayView {
        let icon = icon_of(status);
        let line = status_line(status, icon);
        let mut tooltip = format!("Postern: {line}");
        if let Some(p) = problems(status).first() {
            tooltip.push_str(&format!("\n{}: {}", p.server, p.meaning));
        }
        if let Some(at) = next_retry(status) {
            tooltip.push_str(&format!("\nNext try at {at}"));
        }
        let mut items = MenuEntry::menu(&line, !status.fetching, status.paused, true);
        // The backup MX: a line per neighbour's domain, under the status line.
        let backup = backup_lines(status, now);
        for (i, b) in backup.iter().enumerate() {
            items.insert(1 + i, MenuEntry::item(b, false, MenuAction::Nothing));
            tooltip.push_str(&format!("\n{b}"));
        }
        if let Some(queued) = status.outbound_queued {
            // With an outbound relay: its queue, after Activity.
            let label = match queued {
                0 => "Outgoing queue…".to_string(),
                n => format!("Outgoing queue ({n})…"),
            };
            let at = items
                .iter()
                .position(|e| e == &MenuEntry::Separator)
                .unwrap_or(items.len());
            items.insert(
                at,
                MenuEntry::item(&label, true, MenuAction::Open(Window::Queue)),
            );
        }
        TrayView {
            icon,
            tooltip,
            status_line: line.clone(),
            items,
        }
    }
}

impl TrayView {
    /// Before a valid configuration exists: the menu leads to the setup wizard.
    pub fn not_configured() -> TrayView {
        let line = "Not set up yet";
        TrayView {
            icon: TrayIcon::Offline,
            tooltip: format!("Postern: {line}"),
            status_line: line.to_string(),
            items: MenuEntry::menu(line, false, false, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::server::HeldStatus;
    use crate::outcome::Outcome;
    use crate::supervisor::ServerStatus;

    fn outcome(code: Option<u16>, disposition: Disposition, meaning: &str) -> Outcome {
        Outcome {
            server: "mail.isp.example:25".into(),
            domain: "office.example".into(),
            step: "ETRN office.example".into(),
            code,
            text: "text".into(),
            disposition,
            meaning: meaning.into(),
            fix: Some("the fix".into()),
            pending: None,
            received: None,
        }
    }

    fn online(messages: u64) -> Status {
        Status {
            link: LinkState::Up,
            messages_received: messages,
            last_fetch: vec![outcome(Some(250), Disposition::Released, "released")],
            last_fetch_at: Some("2026-11-28T10:42:07+01:00".into()),
            ..Status::default()
        }
    }

    fn menu(status_line: &str, fetch_enabled: bool, paused: bool) -> Vec<MenuEntry> {
        MenuEntry::menu(status_line, fetch_enabled, paused, true)
    }

    #[test]
    fn at_start_before_the_link_is_known() {
        let status = Status::default();

        let view = TrayView::from_status(&status);

        let line = "Checking the link… · no fetch yet · 0 messages";
        assert_eq!(
            view,
            TrayView {
                icon: TrayIcon::Offline,
                tooltip: format!("Postern: {line}"),
                status_line: line.into(),
                items: menu(line, true, false),
            }
        );
    }

    #[test]
    fn online_and_idle() {
        let status = online(12);

        let view = TrayView::from_status(&status);

        let line = "Online · last fetch 10:42 · 12 messages";
        assert_eq!(
            view,
            TrayView {
                icon: TrayIcon::Online,
                tooltip: format!("Postern: {line}"),
                status_line: line.into(),
                items: menu(line, true, false),
            }
        );
    }

    #[test]
    fn one_message_is_singular() {
        let view = TrayView::from_status(&online(1));

        assert_eq!(view.status_line, "Online · last fetch 10:42 · 1 message");
    }

    #[test]
    fn fetching_disables_fetch_now() {
        let status = Status {
            fetching: true,
            ..online(3)
        };

        let view = TrayView::from_status(&status);

        let line = "Fetching mail… · last fetch 10:42 · 3 messages";
        assert_eq!(
            view,
            TrayView {
                icon: TrayIcon::Busy,
                tooltip: format!("Postern: {line}"),
                status_line: line.into(),
                items: menu(line, false, false),
            }
        );
    }

    #[test]
    fn paused_offers_resume() {
        let status = Status {
            paused: true,
            ..online(12)
        };

        let view = TrayView::from_status(&status);

        let line = "Paused · last fetch 10:42 · 12 messages";
        assert_eq!(
            view,
            TrayView {
                icon: TrayIcon::Online,
                tooltip: format!("Postern: {line}"),
                status_line: line.into(),
                items: menu(line, true, true),
            }
        );
    }

    #[test]
    fn link_down_is_offline() {
        let status = Status {
            link: LinkState::Down,
            ..online(4)
        };

        let view = TrayView::from_status(&status);

        let line = "Offline · last fetch 10:42 · 4 messages";
        assert_eq!(
            view,
            TrayView {
                icon: TrayIcon::Offline,
                tooltip: format!("Postern: {line}"),
                status_line: line.into(),
                items: menu(line, true, false),
            }
        );
    }

    #[test]
    fn waiting_for_the_connect_back_is_busy() {
        let status = Status {
            servers: vec![ServerStatus {
                server: "mail.isp.example:25".into(),
                awaiting_connect_back: true,
                ..ServerStatus::default()
            }],
            ..online(0)
        };

        let view = TrayView::from_status(&status);

        let line = "Waiting for the released mail… · last fetch 10:42 · 0 messages";
        assert_eq!(
            view,
            TrayView {
                icon: TrayIcon::Busy,
                tooltip: format!("Postern: {line}"),
                status_line: line.into(),
                items: menu(line, true, false),
            }
        );
    }

    #[test]
    fn a_failed_dequeue_shows_its_retry() {
        let status = Status {
            last_fetch: vec![outcome(None, Disposition::Retry, "cannot connect")],
            servers: vec![ServerStatus {
                server: "mail.isp.example:25".into(),
                attempt: 2,
                next_retry_at: Some("2026-11-28T10:50:00+01:00".into()),
                ..ServerStatus::default()
            }],
            ..online(0)
        };

        let view = TrayView::from_status(&status);

        let line = "Needs attention · last fetch 10:42 · 0 messages";
        assert_eq!(
            view,
            TrayView {
                icon: TrayIcon::Attention,
                tooltip: format!(
                    "Postern: {line}\nmail.isp.example:25: cannot connect\nNext try at 10:50"
                ),
                status_line: line.into(),
                items: menu(line, true, false),
            }
        );
        assert_eq!(
            StatusView::from_status(&status).next_retry,
            Some("10:50".into())
        );
    }

    #[test]
    fn refused_etrn_needs_attention() {
        let status = Status {
            last_fetch: vec![
                outcome(Some(250), Disposition::Released, "released"),
                outcome(
                    Some(459),
                    Disposition::Permanent,
                    "not allowed for this domain",
                ),
            ],
            ..online(2)
        };

        let view = TrayView::from_status(&status);

        let line = "Needs attention · last fetch 10:42 · 2 messages";
        assert_eq!(
            view,
            TrayView {
                icon: TrayIcon::Attention,
                tooltip: format!(
                    "Postern: {line}\nmail.isp.example:25: not allowed for this domain"
                ),
                status_line: line.into(),
                items: menu(line, true, false),
            }
        );
    }

    #[test]
    fn status_view_lists_the_problems() {
        let status = Status {
            last_fetch: vec![outcome(Some(458), Disposition::Retry, "try later")],
            ..online(5)
        };

        let view = StatusView::from_status(&status);

        assert_eq!(
            view,
            StatusView {
                icon: TrayIcon::Attention,
                status_line: "Needs attention · last fetch 10:42 · 5 messages".into(),
                paused: false,
                fetching: false,
                messages_received: 5,
                last_fetch: Some("10:42".into()),
                next_retry: None,
                problems: vec![Problem {
                    server: "mail.isp.example:25".into(),
                    domain: "office.example".into(),
                    meaning: "try later".into(),
                    fix: Some("the fix".into()),
                }],
                outbound_queued: None,
            }
        );
    }

    #[test]
    fn the_status_line_counts_the_outgoing_mail_waiting_in_the_queue() {
        let status = Status {
            outbound_queued: Some(3),
            ..online(12)
        };

        let view = TrayView::from_status(&status);

        let line = "Online · last fetch 10:42 · 12 messages · 3 outgoing queued";
        let mut items = menu(line, true, false);
        let before_separator = items.len() - 2;
        items.insert(
            before_separator,
            MenuEntry::item("Outgoing queue (3)…", true, MenuAction::Open(Window::Queue)),
        );
        assert_eq!(
            view,
            TrayView {
                icon: TrayIcon::Online,
                tooltip: format!("Postern: {line}"),
                status_line: line.into(),
                items,
            }
        );
        assert_eq!(view.items[before_separator + 1], MenuEntry::Separator);
        assert_eq!(StatusView::from_status(&status).outbound_queued, Some(3));
    }

    #[test]
    fn an_empty_outbound_queue_adds_nothing_to_the_status_line() {
        let status = Status {
            link: LinkState::Down,
            outbound_queued: Some(0),
            ..online(1)
        };

        let view = TrayView::from_status(&status);

        let line = "Offline · last fetch 10:42 · 1 message";
        let mut items = menu(line, true, false);
        let before_separator = items.len() - 2;
        items.insert(
            before_separator,
            MenuEntry::item("Outgoing queue…", true, MenuAction::Open(Window::Queue)),
        );
        assert_eq!(view.status_line, line);
        assert_eq!(view.items, items);
    }

    fn held(domain: &str, held: u32, last_fetch: Option<&str>) -> HeldStatus {
        HeldStatus {
            domain: domain.into(),
            held,
            last_fetch: last_fetch.map(str::to_string),
            last_fetch_by: last_fetch.map(|_| "ETRN from 192.0.2.7".to_string()),
            configured: true,
            ..HeldStatus::default()
        }
    }

    #[test]
    fn each_backed_up_domain_shows_what_is_held_and_when_the_neighbour_fetched() {
        let now = DateTime::parse_from_rfc3339("2026-11-28T12:45:00+01:00").unwrap();
        let cases: [(HeldStatus, &str); 7] = [
            (
                held("neighbour.example", 12, Some("2026-11-28T10:42:07+01:00")),
                "neighbour.example: 12 held, fetched 2 h ago (ETRN)",
            ),
            (
                held("a.example", 0, Some("2026-11-28T12:44:30+01:00")),
                "a.example: nothing held, fetched just now (ETRN)",
            ),
            (
                held("b.example", 1, Some("2026-11-28T12:20:00+01:00")),
                "b.example: 1 held, fetched 25 min ago (ETRN)",
            ),
            (
                held("c.example", 3, Some("2026-11-25T12:00:00+01:00")),
                "c.example: 3 held, fetched 3 d ago (ETRN)",
            ),
            (
                held("d.example", 2, None),
                "d.example: 2 held, never fetched",
            ),
            (
                HeldStatus {
                    needs_attention: true,
                    returns_at: Some("2026-11-29T09:00:00+01:00".into()),
                    ..held("e.example", 5, None)
                },
                "e.example: 5 held, never fetched · goes back to the senders from 29 Nov 09:00",
            ),
            (
                HeldStatus {
                    configured: false,
                    needs_attention: true,
                    ..held("gone.example", 1, None)
                },
                "gone.example: 1 held, never fetched · no longer backed up: goes back to the \
                 senders",
            ),
        ];
        for (entry, expected) in cases {
            let status = Status {
                backup: vec![entry],
                ..online(0)
            };

            let lines = backup_lines(&status, now);

            assert_eq!(lines, vec![expected.to_string()]);
        }
    }

    #[test]
    fn the_backup_lines_follow_the_status_line_in_the_menu_and_the_tooltip() {
        let now = DateTime::parse_from_rfc3339("2026-11-28T12:45:00+01:00").unwrap();
        let status = Status {
            backup: vec![
                held("neighbour.example", 12, Some("2026-11-28T10:42:07+01:00")),
                held("other.example", 0, None),
            ],
            ..online(3)
        };

        let view = TrayView::from_status_at(&status, now);

        let line = "Online · last fetch 10:42 · 3 messages";
        let first = "neighbour.example: 12 held, fetched 2 h ago (ETRN)";
        let second = "other.example: nothing held, never fetched";
        let mut items = menu(line, true, false);
        items.insert(1, MenuEntry::item(first, false, MenuAction::Nothing));
        items.insert(2, MenuEntry::item(second, false, MenuAction::Nothing));
        assert_eq!(
            view,
            TrayView {
                icon: TrayIcon::Online,
                tooltip: format!("Postern: {line}\n{first}\n{second}"),
                status_line: line.into(),
                items,
            }
        );
    }

    #[test]
    fn held_mail_near_max_hold_needs_attention() {
        let now = DateTime::parse_from_rfc3339("2026-11-28T12:45:00+01:00").unwrap();
        let status = Status {
            backup: vec![HeldStatus {
                needs_attention: true,
                ..held("neighbour.example", 4, None)
            }],
            ..online(0)
        };

        let view = TrayView::from_status_at(&status, now);

        assert_eq!(view.icon, TrayIcon::Attention);
        assert!(view.status_line.starts_with("Needs attention"));
    }

    #[test]
    fn not_configured_disables_the_engine_actions() {
        let view = TrayView::not_configured();

        let line = "Not set up yet";
        let expected = MenuEntry::menu(line, false, false, false);
        assert_eq!(
            view,
            TrayView {
                icon: TrayIcon::Offline,
                tooltip: format!("Postern: {line}"),
                status_line: line.into(),
                items: expected,
            }
        );
    }

    #[test]
    fn every_entry_carries_its_action_and_its_id_gives_it_back() {
        let view = TrayView::from_status(&Status::default());

        let actions: Vec<MenuAction> = view
            .items
            .iter()
            .filter_map(|e| match e {
                MenuEntry::Item { action, .. } => Some(action.clone()),
                MenuEntry::Separator => None,
            })
            .collect();

        assert_eq!(
            actions,
            vec![
                MenuAction::Nothing,
                MenuAction::Open(Window::Dashboard),
                MenuAction::Engine(Command::FetchNow),
                MenuAction::Engine(Command::Pause),
                MenuAction::Open(Window::Mx),
                MenuAction::Open(Window::Settings),
                MenuAction::Open(Window::Activity),
                MenuAction::Quit,
            ]
        );
        for action in &actions {
            assert_eq!(MenuAction::from_id(&action.id()).as_ref(), Some(action));
        }
        assert_eq!(
            view.items
                .iter()
                .filter(|e| **e == MenuEntry::Separator)
                .count(),
            1
        );
        assert_eq!(MenuAction::from_id("nonsense"), None);
    }
}
