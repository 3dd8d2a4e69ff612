//! The tray, rendered from the engine's [`TrayView`]. Each entry carries its [`MenuAction`],
//! whose JSON is the native item's id, so a click is decoded, not looked up.

use postern_engine::view::{MenuAction, MenuEntry, TrayIcon, TrayView};
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Runtime};

use crate::shell::Shell;

pub const TRAY_ID: &str = "postern";

fn icon(icon: TrayIcon) -> tauri::Result<Image<'static>> {
    let bytes: &'static [u8] = match icon {
        TrayIcon::Offline => include_bytes!("../../icons/tray/offline.png"),
        TrayIcon::Online => include_bytes!("../../icons/tray/online.png"),
        TrayIcon::Busy => include_bytes!("../../icons/tray/busy.png"),
        TrayIcon::Attention => include_bytes!("../../icons/tray/attention.png"),
    };
    Image::from_bytes(bytes)
}

fn menu<R: Runtime>(app: &AppHandle<R>, view: &TrayView) -> tauri::Result<Menu<R>> {
    let menu = Menu::new(app)?;
    for entry in &view.items {
        match entry {
            MenuEntry::Separator => menu.append(&PredefinedMenuItem::separator(app)?)?,
            MenuEntry::Item {
                label,
                enabled,
                action,
            } => menu.append(&MenuItem::with_id(
                app,
                action.id(),
                label,
                *enabled,
                None::<&str>,
            )?)?,
        }
    }
    Ok(menu)
}

pub fn create<R: Runtime>(app: &AppHandle<R>, view: &TrayView) -> tauri::Result<()> {
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon(view.icon)?)
        .tooltip(&view.tooltip)
        .menu(&menu(app, view)?)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, event| on_menu(app, event.id().as_ref()))
        .build(app)?;
    Ok(())
}

pub fn update<R: Runtime>(app: &AppHandle<R>, view: &TrayView) {
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return;
    };
    let result = menu(app, view)
        .and_then(|m| tray.set_menu(Some(m)))
        .and_then(|()| tray.set_icon(Some(icon(view.icon)?)))
        .and_then(|()| tray.set_tooltip(Some(&view.tooltip)));
    if let Err(e) = result {
        tracing::warn!("cannot update the tray: {e}");
    }
}

pub fn on_menu<R: Runtime>(app: &AppHandle<R>, id: &str) {
    let Some(action) = MenuAction::from_id(id) else {
        return;
    };
    match action {
        MenuAction::Engine(command) => {
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                if let Err(e) = app.state::<Shell>().send(command).await {
                    tracing::warn!("{e}");
                    let _ = crate::windows::open(&app, postern_engine::view::Window::Wizard);
                }
            });
        }
        MenuAction::Open(window) => {
            if let Err(e) = crate::windows::open(app, window) {
                tracing::warn!("cannot open the {window:?} window: {e}");
            }
        }
        MenuAction::Quit => {
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                app.state::<Shell>().shutdown().await;
                app.exit(0);
            });
        }
        MenuAction::Nothing => {}
    }
}
