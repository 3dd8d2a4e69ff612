//! What the fuzz targets share: one runtime per process, a byte stream that plays a script, the
//! checks every SMTP conversation must pass, and an inbound session context that delivers into
//! a Maildir on tmpfs.
//!
//! Every target's input starts with a small header (how the bytes are cut into reads, which
//! limits apply, ...) and the rest is what the peer sends. The header bytes are consumed with
//! [`Input::byte`], which yields 0 once the input is exhausted, so every input is valid.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use postern_engine::deliver::Delivery;
use postern_engine::events::EventSender;
use postern_engine::smtp_server::session::{self, SessionInfo, SessionSummary};
use postern_engine::smtp_server::{ServerSettings, SessionContext};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The current-thread runtime every iteration runs on (built once: building one costs more
/// than most iterations).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// The fuzz input, read from the front.
pub struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input(data)
    }
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    pub fn rest(self) -> &'a [u8] {
        self.0
    }
}

/// The size of each read the stream hands out: single bytes up to whole inputs, so that
/// commands, CRLFs and the final dot get split at every place. Tiny reads are kept rare: a line
/// read byte by byte is rescanned for its LF after every byte, which under coverage
/// instrumentation costs more than all the rest of an iteration.
pub fn chunk_size(b: u8) -> usize {
    match b {
        0..=15 => b as usize + 1,
        16..=254 => (b as usize - 15) * 24,
        255 => usize::MAX,
    }
}

/// A stream whose reads replay `input` (in reads of at most `chunk` bytes, then end of file)
/// and whose writes are collected.
pub struct Scripted {
    input: Vec<u8>,
    pos: usize,
    chunk: usize,
    written: Arc<Mutex<Vec<u8>>>,
}

impl Scripted {
    pub fn new(input: Vec<u8>, chunk: usize) -> (Scripted, Arc<Mutex<Vec<u8>>>) {
        let written = Arc::new(Mutex::new(Vec::new()));
        let stream = Scripted {
            input,
            pos: 0,
            chunk: chunk.max(1),
            written: written.clone(),
        };
        (stream, written)
    }
}

impl AsyncRead for Scripted {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let left = &this.input[this.pos..];
        let n = left.len().min(this.chunk).min(buf.remaining());
        buf.put_slice(&left[..n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.written
            .lock()
            .expect("not poisoned")
            .extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// What a server writes must be SMTP replies: `ddd text` or `ddd-text` lines ending in CRLF, no
/// CR or LF inside a line (a peer's text echoed into a reply must not start a new one), and the
/// lines of a multi-line reply share their code.
pub fn check_replies(out: &[u8]) {
    let mut open: Option<&[u8]> = None;
    for line in out.split_inclusive(|&b| b == b'\n') {
        let shown = String::from_utf8_lossy(line);
        let body = line
            .strip_suffix(b"\r\n")
            .unwrap_or_else(|| panic!("reply line without CRLF: {shown:?}"));
        assert!(
            !body.contains(&b'\r'),
            "bare CR inside a reply line: {shown:?}"
        );
        assert!(
            body.len() >= 4
                && body[..3].iter().all(u8::is_ascii_digit)
                && matches!(body[3], b' ' | b'-'),
            "not an SMTP reply line: {shown:?}"
        );
        if let Some(code) = open {
            assert_eq!(
                code,
                &body[..3],
                "a multi-line reply changes its code: {shown:?}"
            );
        }
        open = (body[3] == b'-').then(|| &body[..3]);
    }
    assert!(open.is_none(), "the last reply is left open");
}

/// What a client writes must be command lines ending in CRLF, with no CR or LF inside (after an
/// ATRN turnaround, the replies of our session follow on the same connection).
pub fn check_commands(out: &[u8]) {
    for line in out.split_inclusive(|&b| b == b'\n') {
        let shown = String::from_utf8_lossy(line);
        let body = line
            .strip_suffix(b"\r\n")
            .unwrap_or_else(|| panic!("command line without CRLF: {shown:?}"));
        assert!(!body.contains(&b'\r'), "bare CR inside a line: {shown:?}");
    }
}

pub const DOMAINS: [&str; 2] = ["office.example", "branch.example"];

/// The Maildir every session of this process delivers into.
struct Store {
    delivery: Delivery,
    events: EventSender,
    new: PathBuf,
    tmp: PathBuf,
}

fn store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| {
        // tmpfs when there is one: a commit fsyncs twice.
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        // libFuzzer ends the process with exit(): nothing is dropped, so each run removes what
        // the finished ones left.
        remove_stale(&base);
        let root = base
            .join(format!("postern-fuzz-{}", std::process::id()))
            .join("Maildir");
        let target = postern_engine::config::DeliverTarget::Maildir(root.clone());
        let delivery = Delivery::open(&target, "mx.office.example", Duration::from_secs(30))
            .expect("the Maildir");
        let (events, _) = postern_engine::events::channel();
        Store {
            delivery,
            events,
            new: root.join("new"),
            tmp: root.join("tmp"),
        }
    })
}

fn remove_stale(base: &Path) {
    for entry in std::fs::read_dir(base).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("postern-fuzz-")) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Inbound limits, picked by one header byte.
pub fn settings(b: u8) -> ServerSettings {
    ServerSettings {
        hostname: "mx.office.example".into(),
        domains: DOMAINS.iter().map(|d| d.to_string()).collect(),
        max_message_size: [64, 1024, 50 * 1024 * 1024, 0][(b & 3) as usize],
        max_recipients: if b & 4 == 0 { 100 } else { 2 },
        max_errors: if b & 8 == 0 { 20 } else { 3 },
        max_junk_commands: if b & 16 == 0 { 20 } else { 2 },
        session_timeout: None,
        ..ServerSettings::default()
    }
}

pub fn context(settings: ServerSettings) -> SessionContext {
    let store = store();
    SessionContext {
        settings,
        delivery: store.delivery.clone(),
        events: store.events.clone(),
        arrivals: None,
        tls: None,
    }
}

/// Client bytes the harness may put in front of the fuzz input, so that the input starts at a
/// given state of the session (picked by a header byte).
pub fn prefix(b: u8) -> &'static [u8] {
    match b % 6 {
        0 | 1 => b"",
        2 => b"EHLO client.example\r\n",
        3 => b"EHLO client.example\r\nMAIL FROM:<a@isp.example>\r\nRCPT TO:<u@office.example>\r\n",
        // Inside DATA.
        4 => {
            b"EHLO client.example\r\nMAIL FROM:<a@isp.example>\r\nRCPT TO:<u@office.example>\r\nDATA\r\n"
        }
        _ => b"HELO client.example\r\nMAIL FROM:<>\r\nRCPT TO:<u@branch.example>\r\nDATA\r\n",
    }
}

/// Runs one inbound session over `stream` and checks what it wrote and what it stored.
pub fn run_session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    written: &Mutex<Vec<u8>>,
    initial: Vec<u8>,
    info: SessionInfo,
    ctx: &SessionContext,
) -> SessionSummary {
    let (_keep, shutdown) = tokio::sync::watch::channel(false);
    let summary = runtime().block_on(session::run(stream, initial, info, ctx, shutdown));
    check_replies(&written.lock().expect("not poisoned"));
    check_store(summary.accepted);
    summary
}

/// Every message answered 250 is in new/, nothing is left behind in tmp/; then new/ is emptied
/// for the next iteration.
pub fn check_store(accepted: u32) {
    let store = store();
    let left: Vec<_> = std::fs::read_dir(&store.tmp)
        .expect("tmp/")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(left.is_empty(), "files left in tmp/: {left:?}");
    let stored: Vec<_> = std::fs::read_dir(&store.new)
        .expect("new/")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(
        stored.len(),
        accepted as usize,
        "messages answered 250 vs files in new/"
    );
    for path in stored {
        let text = std::fs::read(&path).expect("a stored message");
        assert!(
            text.starts_with(b"Received: from "),
            "stored message without our Received: header"
        );
        std::fs::remove_file(&path).expect("remove a stored message");
    }
}

/// Parses `text` as postern.toml and checks what the config commands rely on: an error renders
/// with its position, an accepted file renders (`posternd config check`) to TOML that parses
/// back to the same configuration.
pub fn check_config(text: &str) {
    use postern_engine::config::Config;
    let path = Path::new("postern.toml");
    match Config::parse(text, path) {
        Err(e) => {
            let _ = e.to_string();
        }
        Ok(config) => {
            let _ = config.notes();
            let rendered = config.to_toml();
            let again = Config::parse(&rendered, path).unwrap_or_else(|e| {
                panic!("the rendered configuration does not parse: {e}\n{rendered}")
            });
            assert_eq!(
                again, config,
                "the rendered configuration parses to another one:\n{rendered}"
            );
        }
    }
}
