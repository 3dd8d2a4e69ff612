//! Windows are created when asked for and destroyed when closed (a WebKit window costs a few
//! hundred MB; the tray alone a few tens). The app keeps running in the tray.

use postern_engine::view::Window;
use tauri::{AppHandle, Manager, Runtime, WebviewUrl, WebviewWindowBuilder};

pub fn label(window: Window) -> &'static str {
    match window {
        Window::Dashboard => "dashboard",
        Window::Settings => "settings",
        Window::Wizard => "wizard",
        Window::Activity => "activity",
        Window::Mx => "mx",
        Window::Queue => "queue",
    }
}

fn title_and_size(window: Window) -> (&'static str, f64, f64) {
    match window {
        Window::Dashboard => ("Postern dashboard", 900.0, 760.0),
        Window::Settings => ("Postern settings", 760.0, 720.0),
        Window::Wizard => ("Set up Postern", 720.0, 640.0),
        Window::Activity => ("Postern activity", 820.0, 560.0),
        Window::Mx => ("MX records", 760.0, 600.0),
        Window::Queue => ("Outgoing mail queue", 880.0, 520.0),
    }
}

/// Shows the window, creating it if needed. The UI picks its page from the URL fragment.
pub fn open<R: Runtime>(app: &AppHandle<R>, window: Window) -> tauri::Result<()> {
    let label = label(window);
    if let Some(existing) = app.get_webview_window(label) {
        existing.show()?;
        existing.unminimize()?;
        return existing.set_focus();
    }
    let (title, width, height) = title_and_size(window);
    WebviewWindowBuilder::new(
        app,
        label,
        WebviewUrl::App(format!("index.html#/{label}").into()),
    )
    .title(title)
    .inner_size(width, height)
    .min_inner_size(480.0, 400.0)
    .build()?;
    Ok(())
}
