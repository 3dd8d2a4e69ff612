//! `postern`, the tray app: a thin shell over the engine's `EngineHandle`.
//!
//! Order matters in [`run`]: the single-instance plugin first (a second start only opens a
//! window in the first), then the other plugins, then setup (tray, event bridge, engine or the
//! setup wizard), then the commands, then the run loop that keeps the app alive in the tray
//! when the last window closes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use postern_engine::config::{self, Config};
use postern_engine::events::Event;
use postern_engine::secrets::{MemoryStore, OsKeyring, SecretStore};
use postern_engine::view::{TrayView, Window};
use tauri::{AppHandle, Manager, RunEvent, Runtime};

pub mod bridge;
pub mod commands;
pub mod shell;
pub mod tray;
pub mod windows;

use shell::Shell;

#[derive(Parser, Debug)]
#[command(name = "postern", version, about = "Postern, the tray app")]
struct Cli {
    /// The config file (default: $POSTERN_CONFIG, then the OS config folder).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Started at login: open no window unless setup is needed.
    #[arg(long)]
    autostart: bool,
}

/// Registers the commands on a builder; the app and the tests use the same list.
pub fn with_commands<R: Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    builder.invoke_handler(tauri::generate_handler![
        commands::get_status,
        commands::fetch_now,
        commands::pause,
        commands::resume,
        commands::load_config,
        commands::save_config,
        commands::set_secret,
        commands::probe_queue_server,
        commands::test_delivery,
        commands::recent_activity,
        commands::check_mx,
        commands::check_reachability,
        commands::open_window,
    ])
}

fn open_secrets() -> (Arc<dyn SecretStore>, Option<String>) {
    match OsKeyring::open() {
        Ok(k) => (Arc::new(k), None),
        Err(e) => (
            Arc::new(MemoryStore::new()),
            Some(format!(
                "the OS keyring is not available ({e}); passwords entered now are kept only until Postern quits"
            )),
        ),
    }
}

/// Starts the engine from the config file, or opens the wizard when there is none.
fn start_engine<R: Runtime>(app: &AppHandle<R>, autostart: bool) {
    let shell = app.state::<Shell>();
    let path = shell.config_path.clone();
    if !path.exists() {
        tray::update(app, &TrayView::not_configured());
        if let Err(e) = windows::open(app, Window::Wizard) {
            tracing::error!("cannot open the setup wizard: {e}");
        }
        return;
    }
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            let _ = shell.events.send(Event::Warning {
                message: e.to_string(),
                fix: Some("correct it in Settings".into()),
            });
            tray::update(app, &TrayView::not_configured());
            if !autostart {
                let _ = windows::open(app, Window::Settings);
            }
            return;
        }
    };
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let shell = app.state::<Shell>();
        match shell.restart(config).await {
            Ok(status) => bridge::watch_status(app.clone(), status),
            Err(e) => {
                let _ = shell.events.send(Event::Warning {
                    message: e.to_string(),
                    fix: Some(
                        "change the listening port or the delivery target in Settings".into(),
                    ),
                });
                tray::update(&app, &TrayView::not_configured());
            }
        }
    });
}

/// GDK on X11 initialises GLX when it opens the display (to choose GL-capable visuals), which
/// loads the Mesa driver and with it libLLVM: about 30 MiB of PSS in a process that mostly only
/// shows a tray icon, and more in the WebKit processes of each window. Postern's windows are
/// forms, which WebKit then draws in software. A GDK_GL the user set is kept.
fn disable_gdk_gl() {
    // g_setenv is not thread-safe: this runs first in `run`, before any thread exists.
    #[cfg(target_os = "linux")]
    if let Err(e) = glib::setenv("GDK_GL", "disable", false) {
        eprintln!("postern: cannot set GDK_GL ({e}); the display may use more memory");
    }
}

/// The runtime for the engine and the commands: two workers as in posternd, instead of one per
/// CPU (each idle worker still costs its stack and a malloc arena). `None`: Tauri's default.
fn small_runtime() -> Option<tokio::runtime::Runtime> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .inspect_err(|e| tracing::warn!("cannot build a 2-worker runtime ({e}); using Tauri's"))
        .ok()?;
    tauri::async_runtime::set(runtime.handle().clone());
    Some(runtime)
}

pub fn run() -> ExitCode {
    disable_gdk_gl();
    let cli = Cli::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .try_init();
    let Some(config_path) = config::config_path(cli.config.as_deref()) else {
        eprintln!(
            "postern: cannot find your config folder; pass --config FILE or set POSTERN_CONFIG"
        );
        return ExitCode::FAILURE;
    };
    // Kept until the app ends: Tauri holds only a handle to it.
    let _runtime = small_runtime();
    let (secrets, keyring_warning) = open_secrets();
    let shell = Shell::new(config_path, secrets);
    let autostart = cli.autostart;

    let builder = tauri::Builder::default()
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            let window = if app.state::<Shell>().is_running() {
                Window::Settings
            } else {
                Window::Wizard
            };
            let _ = windows::open(app, window);
        }))
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            Some(vec!["--autostart"]),
        ))
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_opener::init())
        .manage(shell)
        .setup(move |app| {
            #[cfg(target_os = "macos")]
            app.set_activation_policy(tauri::ActivationPolicy::Accessory);
            let handle = app.handle().clone();
            tray::create(&handle, &TrayView::not_configured())?;
            bridge::forward_events(handle.clone());
            if let Some(warning) = keyring_warning.clone() {
                tracing::warn!("{warning}");
                let _ = handle.state::<Shell>().events.send(Event::Warning {
                    message: warning,
                    fix: Some(
                        "log in to a desktop session with a keyring (GNOME Keyring, KWallet)"
                            .into(),
                    ),
                });
            }
            start_engine(&handle, autostart);
            Ok(())
        });
    let app = match with_commands(builder).build(tauri::generate_context!()) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("postern: cannot start the desktop app: {e}");
            return ExitCode::FAILURE;
        }
    };
    app.run(|_app, event| {
        // Closing the last window keeps Postern in the tray; only "Quit" exits (with a code).
        if let RunEvent::ExitRequested {
            code: None, api, ..
        } = event
        {
            api.prevent_exit();
        }
    });
    ExitCode::SUCCESS
}
