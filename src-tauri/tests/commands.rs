//! The UI's commands through Tauri's IPC on the mock runtime (no display, no WebKit), to the
//! real tray endpoint ([`TrayHost`]) over the control socket.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::PathBuf;
use std::sync::Arc;

use postern_engine::api::{Command, Status};
use postern_engine::control::server::{ControlServer, serve_host};
use postern_engine::events::Event;
use postern_engine::secrets::{MemoryStore, SecretStore};
use postern_lib::remote::Remote;
use postern_tests::harness::Dnsmasq;
use postern_tray::host::TrayHost;
use postern_tray::shell::Shell;
use serde_json::{Value, json};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{
    INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder, mock_context, noop_assets,
};
use tauri::webview::InvokeRequest;
use tauri::{App, WebviewWindow, WebviewWindowBuilder};
use tokio::sync::{mpsc, watch};

struct Harness {
    _app: App<MockRuntime>,
    shell: Arc<Shell>,
    _server: ControlServer,
    webview: WebviewWindow<MockRuntime>,
    commands: mpsc::Receiver<Command>,
    status: watch::Sender<Status>,
    secrets: Arc<MemoryStore>,
    _dir: tempfile::TempDir,
    config_path: PathBuf,
}

/// The tray's endpoint for `shell`, and a window app that talks to it.
fn window_app(shell: &Arc<Shell>) -> (App<MockRuntime>, WebviewWindow<MockRuntime>, ControlServer) {
    let host = Arc::new(TrayHost {
        shell: shell.clone(),
    });
    let server = tauri::async_runtime::block_on(serve_host(shell.endpoint.clone(), host)).unwrap();
    let app = postern_lib::with_commands(mock_builder())
        .manage(Remote::new(shell.config_path.clone(), None))
        .build(mock_context(noop_assets()))
        .unwrap();
    let webview = WebviewWindowBuilder::new(&app, "settings", Default::default())
        .build()
        .unwrap();
    (app, webview, server)
}

fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("postern.toml");
    let (command_tx, commands) = mpsc::channel(8);
    let (status, status_rx) = watch::channel(Status::default());
    let secrets = Arc::new(MemoryStore::new());
    let shell = Arc::new(tauri::async_runtime::block_on(async {
        Shell::with_channels(config_path.clone(), secrets.clone(), command_tx, status_rx)
    }));
    let (app, webview, server) = window_app(&shell);
    Harness {
        _app: app,
        shell,
        _server: server,
        webview,
        commands,
        status,
        secrets,
        _dir: dir,
        config_path,
    }
}

fn invoke(h: &Harness, cmd: &str, args: Value) -> Result<Value, Value> {
    get_ipc_response(
        &h.webview,
        InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        },
    )
    .map(|b| b.deserialize::<Value>().unwrap())
}

#[test]
fn fetch_pause_resume_reach_the_engine() {
    let mut h = harness();

    let replies: Vec<_> = ["fetch_now", "pause", "resume"]
        .iter()
        .map(|c| invoke(&h, c, json!({})))
        .collect();

    assert_eq!(
        replies,
        vec![Ok(Value::Null), Ok(Value::Null), Ok(Value::Null)]
    );
    let sent: Vec<_> = std::iter::from_fn(|| h.commands.try_recv().ok()).collect();
    assert_eq!(
        sent,
        vec![Command::FetchNow, Command::Pause, Command::Resume]
    );
}

#[test]
fn status_is_the_engine_status_view() {
    let h = harness();
    h.status.send_modify(|s| {
        s.link = postern_engine::link::LinkState::Up;
        s.paused = true;
        s.messages_received = 12;
        s.last_fetch_at = Some("2026-11-28T10:42:00+01:00".into());
    });
    let mut relayed = h.shell.watch_status();
    tauri::async_runtime::block_on(relayed.wait_for(|s| s.messages_received == 12)).unwrap();

    let reply = invoke(&h, "get_status", json!({})).unwrap();

    assert_eq!(
        reply["status_line"],
        "Paused · last fetch 10:42 · 12 messages"
    );
    assert_eq!(reply["icon"], "online");
    assert_eq!(reply["paused"], true);
}

#[test]
fn fetch_without_an_engine_says_to_finish_setup() {
    let dir = tempfile::tempdir().unwrap();
    let shell = Arc::new(Shell::new(
        dir.path().join("postern.toml"),
        Arc::new(MemoryStore::new()),
    ));
    let (_app, webview, _server) = window_app(&shell);

    let reply = get_ipc_response(
        &webview,
        InvokeRequest {
            cmd: "fetch_now".into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: InvokeBody::default(),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        },
    );

    assert_eq!(
        reply.err(),
        Some(json!(
            "Postern is not set up yet: finish the setup wizard first"
        ))
    );
}

#[test]
fn load_config_without_a_file() {
    let h = harness();

    let reply = invoke(&h, "load_config", json!({})).unwrap();

    assert_eq!(
        reply,
        json!({
            "path": h.config_path.display().to_string(),
            "exists": false,
            "config": null,
            "error": null,
        })
    );
}

fn config_json(domains: Value) -> Value {
    json!({
        "domains": domains,
        "queue_servers": [{
            "host": "127.0.0.1", "port": 1, "protocol": "etrn", "tls": "opportunistic",
            "allow_plaintext_auth": false, "allow_insecure_turn": false, "timeout": "5s"
        }],
        "inbound": {
            "listen": ["127.0.0.1:0"], "deliver": "maildir:/tmp/postern-commands-test",
            "hostname": "postern.test", "max_message_size": 1048576, "max_connections": 4,
            "idle_timeout": "1m"
        },
        "link": { "probe": "auto", "refetch_every": "0", "connect_back_timeout": "2m" },
        "dns": { "nameservers": [] }
    })
}

#[test]
fn an_invalid_config_is_refused_and_not_written() {
    let h = harness();

    let reply = invoke(
        &h,
        "save_config",
        json!({ "config": config_json(json!([])) }),
    );

    let message = reply.unwrap_err();
    assert!(message.as_str().unwrap().contains("domains"), "{message}");
    assert!(!h.config_path.exists());
}

#[test]
fn save_config_writes_the_file_and_starts_the_engine() {
    let h = harness();

    let reply = invoke(
        &h,
        "save_config",
        json!({ "config": config_json(json!(["office.test"])) }),
    );

    assert!(reply.is_ok(), "{reply:?}");
    let saved = postern_engine::config::Config::load(&h.config_path).unwrap();
    assert_eq!(saved.domains, vec!["office.test".to_string()]);
    let shell = h.shell.clone();
    tauri::async_runtime::block_on(shell.shutdown());
}

#[test]
fn the_dashboard_and_activity_read_the_running_engines_journal() {
    let h = harness();
    let before = invoke(&h, "read_journal", json!({ "query": {} })).unwrap_err();
    assert!(
        before.as_str().unwrap().contains("setup wizard"),
        "{before}"
    );
    let state = tempfile::tempdir().unwrap();
    let mut config = config_json(json!(["office.test"]));
    config["state_dir"] = json!(state.path());
    invoke(&h, "save_config", json!({ "config": config })).unwrap();

    // The engine journals its listener as it starts.
    let page = postern_tests::harness::wait::poll_until(
        "the listener's entry in the journal",
        std::time::Duration::from_secs(20),
        || {
            let page = invoke(&h, "read_journal", json!({ "query": { "kind": "link" } })).ok()?;
            let listening = page["entries"].as_array()?.iter().any(|e| {
                e["kind"] == "link" && e["text"].as_str().unwrap_or("").starts_with("listening on")
            });
            listening.then_some(page)
        },
    )
    .unwrap();
    let dashboard = invoke(&h, "dashboard", json!({})).unwrap();

    assert_eq!(page["more"], json!(false));
    assert_eq!(dashboard["stats"]["received_today"], json!(0));
    assert_eq!(dashboard["stats"]["per_day"].as_array().unwrap().len(), 30);
    assert_eq!(dashboard["stats_error"], Value::Null);
    assert_eq!(dashboard["servers"][0]["server"], json!("127.0.0.1:1"));
    let shell = h.shell.clone();
    tauri::async_runtime::block_on(shell.shutdown());
}

#[test]
fn saving_again_reloads_the_running_engine_instead_of_restarting_it() {
    let h = harness();
    let first = invoke(
        &h,
        "save_config",
        json!({ "config": config_json(json!(["office.test"])) }),
    );
    let shell = h.shell.clone();
    let mut events = shell.events.subscribe();

    let second = invoke(
        &h,
        "save_config",
        json!({ "config": config_json(json!(["office.test", "branch.test"])) }),
    );

    assert!(first.is_ok(), "{first:?}");
    assert!(second.is_ok(), "{second:?}");
    let seen: Vec<_> = std::iter::from_fn(|| events.try_recv().ok()).collect();
    assert!(
        seen.contains(&Event::ConfigReloaded {
            changes: vec!["domains: office.test, branch.test (were office.test)".into()]
        }),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|e| matches!(e, Event::Listening { .. })),
        "the listener was restarted: {seen:?}"
    );
    tauri::async_runtime::block_on(shell.shutdown());
}

#[test]
fn a_config_the_running_engine_refuses_does_not_replace_the_working_file() {
    let h = harness();
    let first = invoke(
        &h,
        "save_config",
        json!({ "config": config_json(json!(["office.test"])) }),
    );
    let working = std::fs::read_to_string(&h.config_path).unwrap();
    let mut refused = config_json(json!(["office.test", "branch.test"]));
    // Valid as a file, but no Maildir can be made there: the reload fails.
    refused["inbound"]["deliver"] = json!("maildir:/proc/postern-refused/Maildir");

    let second = invoke(&h, "save_config", json!({ "config": refused }));

    assert!(first.is_ok(), "{first:?}");
    let message = second.unwrap_err();
    assert!(
        message.as_str().unwrap().contains("delivery target"),
        "{message}"
    );
    assert_eq!(std::fs::read_to_string(&h.config_path).unwrap(), working);
    let shell = h.shell.clone();
    tauri::async_runtime::block_on(shell.shutdown());
}

#[test]
fn passwords_go_to_the_secret_store() {
    let h = harness();

    let reply = invoke(
        &h,
        "set_secret",
        json!({ "name": "office@mail.isp.example", "password": "s3cret" }),
    );

    assert_eq!(reply, Ok(Value::Null));
    assert_eq!(
        h.secrets.get("office@mail.isp.example").unwrap(),
        Some("s3cret".to_string())
    );
}

#[test]
fn test_delivery_checks_the_maildir_folder() {
    let h = harness();
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");

    let ok = invoke(
        &h,
        "test_delivery",
        json!({ "target": format!("maildir:{}", maildir.display()) }),
    );
    let relative = invoke(&h, "test_delivery", json!({ "target": "maildir:Mail" }));
    let nonsense = invoke(&h, "test_delivery", json!({ "target": "/srv/mail" }));

    assert_eq!(
        ok,
        Ok(json!(format!("{} is ready for mail", maildir.display())))
    );
    assert!(maildir.join("new").is_dir());
    assert_eq!(
        relative,
        Err(json!(
            "the Maildir folder must be a full path, e.g. /srv/mail/Maildir"
        ))
    );
    assert!(nonsense.unwrap_err().as_str().unwrap().contains("neither"));
}

#[test]
fn activity_returns_recorded_events() {
    let h = harness();
    let event = Event::Warning {
        message: "ETRN accepted but nothing came back".into(),
        fix: None,
    };
    h.shell.record(&event);

    let reply = invoke(&h, "recent_activity", json!({})).unwrap();

    assert_eq!(reply, json!([serde_json::to_value(&event).unwrap()]));
}

#[test]
fn the_desktop_section_switches_notifications() {
    let h = harness();
    let forced_off = std::env::var("POSTERN_NOTIFICATIONS").as_deref() == Ok("off");
    let mut off = config_json(json!(["office.test"]));
    off["desktop"] = json!({ "notifications": false });

    let saved_off = invoke(&h, "save_config", json!({ "config": off }));
    let shell = h.shell.clone();
    let after_off = shell.notifications_enabled();
    let saved_on = invoke(
        &h,
        "save_config",
        json!({ "config": config_json(json!(["office.test"])) }),
    );
    let after_on = shell.notifications_enabled();

    assert!(
        saved_off.is_ok() && saved_on.is_ok(),
        "{saved_off:?} {saved_on:?}"
    );
    assert!(!after_off);
    assert_eq!(after_on, !forced_off);
    let written = std::fs::read_to_string(&h.config_path).unwrap();
    assert!(
        written.contains("[desktop]\nnotifications = true"),
        "{written}"
    );
    tauri::async_runtime::block_on(shell.shutdown());
}

/// A harness whose saved config points the MX checker at a private dnsmasq: `office.test` has
/// its MX at 127.0.0.1 (this machine) and the queuing server `isp.test` as the backup MX.
fn harness_with_dns() -> (Harness, Dnsmasq) {
    let dns = Dnsmasq::builder()
        .mx("office.test", "mx.office.test", 10)
        .mx("office.test", "isp.test", 20)
        .host("mx.office.test", "127.0.0.1")
        .host("isp.test", "127.0.0.2")
        .start()
        .unwrap();
    let h = harness();
    std::fs::write(
        &h.config_path,
        format!(
            "domains = [\"office.test\"]\n[[queue_servers]]\nhost = \"isp.test\"\n\
             [inbound]\ndeliver = \"maildir:/tmp/postern-commands-test\"\n\
             [dns]\nnameservers = [\"{}\"]\n",
            dns.addr()
        ),
    )
    .unwrap();
    (h, dns)
}

fn reachability(h: &Harness, address: &str, port: u16) -> Result<Value, Value> {
    invoke(
        h,
        "check_reachability",
        json!({
            "domains": ["office.test"], "queueHost": "isp.test",
            "listenAddress": address, "listenPort": port,
        }),
    )
}

fn ids(report: &Value) -> Vec<&str> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect()
}

#[test]
fn reachability_follows_the_listening_address_and_port() {
    let (h, _dns) = harness_with_dns();

    let on_25 = reachability(&h, "0.0.0.0", 25).unwrap();
    let on_2525 = reachability(&h, "127.0.0.1", 2525).unwrap();
    let elsewhere = reachability(&h, "192.0.2.1", 25).unwrap();

    assert_eq!(on_25["verdict"], "reachable", "{on_25}");
    assert_eq!(ids(&on_25), ["etrn.reachable"]);
    assert_eq!(on_2525["verdict"], "needs_forwarding", "{on_2525}");
    assert_eq!(ids(&on_2525), ["etrn.listener-port"]);
    assert!(
        on_2525["findings"][0]["fix"]
            .as_str()
            .unwrap()
            .contains("Forward TCP port 25 to port 2525"),
        "{on_2525}"
    );
    assert_eq!(elsewhere["verdict"], "unreachable", "{elsewhere}");
    assert_eq!(
        ids(&elsewhere),
        ["etrn.listener-not-on-address", "etrn.cannot-deliver"]
    );
}

#[test]
fn reachability_explains_bad_input() {
    let h = harness();

    let address = reachability(&h, "localhost", 25);
    let no_domain = invoke(
        &h,
        "check_reachability",
        json!({ "domains": [" "], "listenAddress": "0.0.0.0", "listenPort": 25 }),
    );

    assert!(
        address
            .unwrap_err()
            .as_str()
            .unwrap()
            .contains("\"localhost\" is not an IP address: write 0.0.0.0"),
    );
    assert_eq!(
        no_domain,
        Err(json!(
            "no mail domain to check: enter the office's domain in the first step"
        ))
    );
}
