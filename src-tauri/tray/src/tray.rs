//! The tray icon and menu, rendered from the engine's [`TrayView`] on the event loop's thread.
//! Each entry carries its [`MenuAction`], whose JSON is the native item's id, so a click is
//! decoded, not looked up.

use postern_engine::view::{MenuEntry, TrayIcon as IconKind, TrayView};
use tray_icon::menu::{Menu, MenuItem, PredefinedMenuItem};
use tray_icon::{Icon, TrayIcon, TrayIconBuilder};

#[derive(Debug, thiserror::Error)]
pub enum TrayError {
    #[error("cannot show the tray icon: {0}")]
    Tray(#[from] tray_icon::Error),
    #[error("cannot build the tray menu: {0}")]
    Menu(#[from] tray_icon::menu::Error),
    #[error("the tray icon image is broken: {0}")]
    Image(String),
}

fn icon(kind: IconKind) -> Result<Icon, TrayError> {
    let bytes: &'static [u8] = match kind {
        IconKind::Offline => include_bytes!("../../../icons/tray/offline.png"),
        IconKind::Online => include_bytes!("../../../icons/tray/online.png"),
        IconKind::Busy => include_bytes!("../../../icons/tray/busy.png"),
        IconKind::Attention => include_bytes!("../../../icons/tray/attention.png"),
    };
    let image = |e: &dyn std::fmt::Display| TrayError::Image(e.to_string());
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::ALPHA);
    let mut reader = decoder.read_info().map_err(|e| image(&e))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| TrayError::Image("too large".into()))?;
    let mut rgba = vec![0; size];
    let info = reader.next_frame(&mut rgba).map_err(|e| image(&e))?;
    if info.color_type != png::ColorType::Rgba || info.bit_depth != png::BitDepth::Eight {
        return Err(TrayError::Image(format!(
            "{:?} {:?} instead of 8-bit RGBA",
            info.color_type, info.bit_depth
        )));
    }
    rgba.truncate(info.buffer_size());
    Icon::from_rgba(rgba, info.width, info.height).map_err(|e| image(&e))
}

fn menu(view: &TrayView) -> Result<Menu, TrayError> {
    let menu = Menu::new();
    for entry in &view.items {
        match entry {
            MenuEntry::Separator => menu.append(&PredefinedMenuItem::separator())?,
            MenuEntry::Item {
                label,
                enabled,
                action,
            } => menu.append(&MenuItem::with_id(action.id(), label, *enabled, None))?,
        }
    }
    Ok(menu)
}

/// Creates the tray icon; on Linux after GTK is up (the event loop's start).
pub fn create(view: &TrayView) -> Result<TrayIcon, TrayError> {
    Ok(TrayIconBuilder::new()
        .with_id("postern")
        .with_icon(icon(view.icon)?)
        .with_tooltip(&view.tooltip)
        .with_menu(Box::new(menu(view)?))
        .with_menu_on_left_click(true)
        .build()?)
}

pub fn update(tray: &TrayIcon, view: &TrayView) {
    let result = menu(view).and_then(|m| {
        tray.set_menu(Some(Box::new(m)));
        tray.set_icon(Some(icon(view.icon)?))?;
        tray.set_tooltip(Some(&view.tooltip))?;
        Ok(())
    });
    if let Err(e) = result {
        tracing::warn!("cannot update the tray: {e}");
    }
}
