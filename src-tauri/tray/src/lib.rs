//! The tray process's parts; `main.rs` puts them on the event loop. A library so that the
//! window process's tests can serve the real tray endpoint ([`host::TrayHost`]).

use postern_engine::view::TrayView;

pub mod autostart;
pub mod bridge;
pub mod host;
pub mod shell;
pub mod tray;
pub mod windows;

/// What the engine's side and the menu ask of the event loop's thread.
#[derive(Debug)]
pub enum UserEvent {
    View(TrayView),
    Menu(String),
    Quit,
}
