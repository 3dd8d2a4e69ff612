//! `postern`, the tray process: the engine, the tray icon and menu, notifications, autostart,
//! and the control endpoint, on tao's event loop (GTK on Linux) without WebKit. The windows
//! are `postern-window`, started on demand ([`windows`]), which reaches the engine only over
//! the control endpoint ([`host`]). A second `postern` asks the running one to open Settings.

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::Parser;
use postern_engine::config::{self, Config};
use postern_engine::control::client::{self, ControlError};
use postern_engine::control::{self, Request, server};
use postern_engine::events::Event;
use postern_engine::secrets::{MemoryStore, OsKeyring, SecretStore};
use postern_engine::view::{MenuAction, TrayView, Window};
use tao::event::{Event as LoopEvent, StartCause};
use tao::event_loop::{ControlFlow, EventLoopBuilder};
use tokio::runtime::Handle;
use tray_icon::menu::MenuEvent;

use postern_tray::shell::Shell;
use postern_tray::{UserEvent, bridge, host, tray};

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

fn warn(shell: &Shell, message: String, fix: &str) {
    let _ = shell.events.send(Event::Warning {
        message,
        fix: Some(fix.into()),
    });
}

fn open(shell: &Shell, window: Window) {
    if let Err(e) = host::open_window(shell, window) {
        tracing::error!("{e}");
    }
}

/// Starts the engine from the config file, or opens the wizard when there is none.
async fn start_engine(shell: Arc<Shell>, autostart: bool) {
    if !shell.config_path.exists() {
        open(&shell, Window::Wizard);
        return;
    }
    let config = match Config::load(&shell.config_path) {
        Ok(c) => c,
        Err(e) => {
            warn(&shell, e.to_string(), "correct it in Settings");
            if !autostart {
                open(&shell, Window::Settings);
            }
            return;
        }
    };
    if let Err(e) = shell.start(config).await {
        warn(
            &shell,
            e.to_string(),
            "change the listening port or the delivery target in Settings",
        );
    }
}

/// A second start: the running tray opens the dashboard. `Ok(false)`: none runs.
async fn ask_running(endpoint: &std::path::Path) -> Result<bool, String> {
    let conn = match client::request(
        endpoint,
        Request::OpenWindow {
            page: Window::Dashboard,
        },
    )
    .await
    {
        Ok(conn) => conn,
        Err(ControlError::NotRunning(_)) => return Ok(false),
        Err(e) => return Err(e.to_string()),
    };
    match conn.reply().await {
        Ok(_) => Ok(true),
        Err(ControlError::Refused(m)) => Err(format!(
            "a Postern engine already runs with this configuration and answers: {m}. \
             If it is `posternd run`, stop it first"
        )),
        Err(e) => Err(e.to_string()),
    }
}

fn on_menu(
    id: &str,
    shell: &Arc<Shell>,
    runtime: &Handle,
    quit: &tao::event_loop::EventLoopProxy<UserEvent>,
) {
    let Some(action) = MenuAction::from_id(id) else {
        return;
    };
    let shell = shell.clone();
    match action {
        MenuAction::Engine(command) => {
            runtime.spawn(async move {
                if let Err(e) = shell.send(command).await {
                    tracing::warn!("{e}");
                    open(&shell, Window::Wizard);
                }
            });
        }
        MenuAction::Open(window) => {
            runtime.spawn(async move { open(&shell, window) });
        }
        MenuAction::Quit => {
            let quit = quit.clone();
            runtime.spawn(async move {
                shell.shutdown().await;
                let _ = quit.send_event(UserEvent::Quit);
            });
        }
        MenuAction::Nothing => {}
    }
}

/// GDK on X11 initialises GLX when it opens the display (to choose GL-capable visuals), which
/// loads the Mesa driver and with it libLLVM: about 30 MiB of PSS in a process that only
/// shows a tray icon. A GDK_GL the user set is kept.
fn disable_gdk_gl() {
    // g_setenv is not thread-safe: this runs first in `main`, before any thread exists.
    #[cfg(target_os = "linux")]
    if let Err(e) = glib::setenv("GDK_GL", "disable", false) {
        eprintln!("postern: cannot set GDK_GL ({e}); the display may use more memory");
    }
}

fn main() -> ExitCode {
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
    // Two workers as in posternd, instead of one per CPU (each idle worker still costs its
    // stack and a malloc arena).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("postern: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let endpoint = control::endpoint_path(&config_path);
    match runtime.block_on(ask_running(&endpoint)) {
        Ok(true) => {
            println!("Postern already runs with this configuration: it opens its window");
            return ExitCode::SUCCESS;
        }
        Ok(false) => {}
        Err(e) => {
            eprintln!("postern: {e}");
            return ExitCode::FAILURE;
        }
    }

    let (secrets, keyring_warning) = open_secrets();
    let shell = Arc::new(Shell::new(config_path, secrets));
    let host = Arc::new(host::TrayHost {
        shell: shell.clone(),
    });
    let endpoint = match runtime.block_on(server::serve_host(shell.endpoint.clone(), host)) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("postern: {e}");
            return ExitCode::FAILURE;
        }
    };

    #[cfg_attr(not(target_os = "macos"), allow(unused_mut))]
    let mut event_loop = EventLoopBuilder::<UserEvent>::with_user_event().build();
    #[cfg(target_os = "macos")]
    {
        use tao::platform::macos::{ActivationPolicy, EventLoopExtMacOS};
        event_loop.set_activation_policy(ActivationPolicy::Accessory);
    }
    let proxy = event_loop.create_proxy();
    // The handler must be Sync; the proxy is only Send.
    let menu_proxy = Mutex::new(proxy.clone());
    MenuEvent::set_event_handler(Some(move |e: MenuEvent| {
        if let Ok(p) = menu_proxy.lock() {
            let _ = p.send_event(UserEvent::Menu(e.id.0));
        }
    }));

    let handle = runtime.handle().clone();
    {
        let _guard = runtime.enter();
        bridge::forward_events(shell.clone());
        bridge::watch_status(shell.clone(), proxy.clone());
    }
    if let Some(warning) = keyring_warning {
        tracing::warn!("{warning}");
        warn(
            &shell,
            warning,
            "log in to a desktop session with a keyring (GNOME Keyring, KWallet)",
        );
    }
    handle.spawn(start_engine(shell.clone(), cli.autostart));

    let mut runtime = Some(runtime);
    let mut endpoint = Some(endpoint);
    let mut tray = None;
    event_loop.run(move |event, _, control_flow| {
        *control_flow = ControlFlow::Wait;
        match event {
            LoopEvent::NewEvents(StartCause::Init) => {
                match tray::create(&TrayView::not_configured()) {
                    Ok(t) => tray = Some(t),
                    Err(e) => {
                        eprintln!("postern: {e}");
                        *control_flow = ControlFlow::ExitWithCode(1);
                    }
                }
            }
            LoopEvent::UserEvent(UserEvent::View(view)) => {
                if let Some(t) = &tray {
                    tray::update(t, &view);
                }
            }
            LoopEvent::UserEvent(UserEvent::Menu(id)) => on_menu(&id, &shell, &handle, &proxy),
            LoopEvent::UserEvent(UserEvent::Quit) => {
                // Removes the socket file; the engine has stopped.
                endpoint.take();
                tray.take();
                if let Some(r) = runtime.take() {
                    r.shutdown_background();
                }
                *control_flow = ControlFlow::ExitWithCode(0);
            }
            _ => {}
        }
    })
}
