//! `postern-window`, the window process: the dashboard, Settings, the setup wizard, the MX
//! report and Activity in WebKit. The tray process (`postern`) starts it on demand; it reaches the engine
//! only over the tray's control endpoint ([`remote`]) and exits when its last window closes,
//! so WebKit's memory goes with it. A second start hands its page to the running one.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use postern_engine::config;
use postern_engine::view::Window;
use tauri::{AppHandle, Manager, Runtime};

pub mod bridge;
pub mod commands;
pub mod remote;
pub mod windows;

use remote::Remote;

#[derive(Parser, Debug)]
#[command(
    name = "postern-window",
    version,
    about = "Postern's windows; the tray app postern starts them"
)]
struct Cli {
    /// The config file of the tray to talk to (default: $POSTERN_CONFIG, then the OS config
    /// folder).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The tray's control endpoint (the tray passes it; default: the one of the config file).
    #[arg(long, value_name = "PATH", hide = true)]
    endpoint: Option<PathBuf>,
    /// The window to open.
    #[arg(long, value_enum, default_value = "dashboard")]
    page: Page,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Page {
    Dashboard,
    Settings,
    Wizard,
    Mx,
    Activity,
    Queue,
}

impl From<Page> for Window {
    fn from(page: Page) -> Window {
        match page {
            Page::Dashboard => Window::Dashboard,
            Page::Settings => Window::Settings,
            Page::Wizard => Window::Wizard,
            Page::Mx => Window::Mx,
            Page::Activity => Window::Activity,
            Page::Queue => Window::Queue,
        }
    }
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
        commands::read_journal,
        commands::dashboard,
        commands::check_mx,
        commands::check_reachability,
        commands::queue_list,
        commands::probe_smarthost,
        commands::queue_action,
        commands::open_window,
        commands::starts_at_login,
        commands::set_start_at_login,
    ])
}

/// Postern's windows are forms: WebKit's GPU paths buy them nothing and cost memory, measured
/// in `make bench` row 6b. Each variable is set only when the user has not set it, and WebKit's
/// own processes inherit them:
/// - `GDK_GL=disable`: GDK on X11 otherwise initialises GLX when it opens the display (to choose
///   GL-capable visuals), which loads the Mesa driver and with it libLLVM (about 30 MiB of PSS).
/// - `WEBKIT_DISABLE_COMPOSITING_MODE=1`: pages are drawn in software, without the compositor's
///   GL surfaces.
/// - `WEBKIT_DISABLE_DMABUF_RENDERER=1`: the window shows the page through shared memory rather
///   than GPU buffers.
/// - `JSC_useJIT=0`: JavaScriptCore interprets; the forms' scripts are small, and the JIT's
///   code and data cost the web process several MiB.
/// - `GALLIUM_DRIVER=softpipe`: where WebKit still needs an EGL display, Mesa's software driver
///   without the LLVM code generator.
fn lighten_webkit() {
    // g_setenv is not thread-safe: this runs first in `run`, before any thread exists.
    #[cfg(target_os = "linux")]
    for (name, value) in [
        ("GDK_GL", "disable"),
        ("WEBKIT_DISABLE_COMPOSITING_MODE", "1"),
        ("WEBKIT_DISABLE_DMABUF_RENDERER", "1"),
        ("JSC_useJIT", "0"),
        ("GALLIUM_DRIVER", "softpipe"),
    ] {
        if let Err(e) = glib::setenv(name, value, false) {
            eprintln!("postern-window: cannot set {name} ({e}); the window may use more memory");
        }
    }
}

/// The page of a second start's command line (the single-instance plugin's argv).
fn page_of(argv: &[String]) -> Window {
    Cli::try_parse_from(argv)
        .map(|cli| cli.page.into())
        .unwrap_or(Window::Dashboard)
}

fn open<R: Runtime>(app: &AppHandle<R>, window: Window) {
    if let Err(e) = windows::open(app, window) {
        tracing::error!("cannot open the {window:?} window: {e}");
    }
}

pub fn run() -> ExitCode {
    lighten_webkit();
    let cli = Cli::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .try_init();
    let Some(config_path) = config::config_path(cli.config.as_deref()) else {
        eprintln!(
            "postern-window: cannot find your config folder; pass --config FILE or set POSTERN_CONFIG"
        );
        return ExitCode::FAILURE;
    };
    let first = Window::from(cli.page);
    let builder = tauri::Builder::default()
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            open(app, page_of(&argv));
        }))
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_opener::init())
        .manage(Remote::new(config_path, cli.endpoint))
        .setup(move |app| {
            let handle = app.handle().clone();
            bridge::follow(handle.clone(), handle.state::<Remote>().inner().clone());
            windows::open(&handle, first)?;
            Ok(())
        });
    let app = match with_commands(builder).build(tauri::generate_context!()) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("postern-window: cannot open a window: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Tauri's default: the process ends when its last window closes.
    app.run(|_, _| {});
    ExitCode::SUCCESS
}
