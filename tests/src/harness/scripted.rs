//! A scripted SMTP server for replies no real peer here gives (RFC 1985's 251/252/253, Exim's
//! `501 argument must begin with #`, `458 Already processing`, odd multi-line replies).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::error::{IoContext, Result};

/// What the script answers to one command line (without CRLF): the reply text, one or more
/// lines separated by "\n" (CRLF is added), or `None` to close the connection without a reply.
pub type Script = dyn Fn(&str) -> Option<String> + Send + Sync;

/// A loopback SMTP server that sends `greeting`, then answers each command line with the script.
/// After a reply starting with "354" it reads message content up to the lone "." and answers the
/// script's reply for the command ".". Records every command line and every message.
pub struct ScriptedServer {
    addr: SocketAddr,
    commands: Arc<Mutex<Vec<String>>>,
    messages: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ScriptedServer {
    /// Starts on a free 127.0.0.1 port. Example, an RFC 1985 server with 3 messages waiting:
    /// `ScriptedServer::start("220 isp.test ESMTP", |c| Some(match c { c if c.starts_with("EHLO") => "250-isp.test\n250 ETRN".into(), c if c.starts_with("ETRN") => "253 3 messages pending, started".into(), "QUIT" => "221 bye".into(), _ => "500 what?".into() }))`
    pub fn start(
        greeting: &str,
        script: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Result<Self> {
        let listener =
            TcpListener::bind(("127.0.0.1", 0)).context(|| "bind scripted server".into())?;
        let addr = listener
            .local_addr()
            .context(|| "scripted server address".into())?;
        listener
            .set_nonblocking(true)
            .context(|| "non-blocking listener".into())?;
        let commands: Arc<Mutex<Vec<String>>> = Arc::default();
        let messages: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        let greeting = greeting.to_string();
        let thread = {
            let (commands, messages, stop) = (commands.clone(), messages.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (script, commands, messages) =
                                (script.clone(), commands.clone(), messages.clone());
                            let greeting = greeting.clone();
                            std::thread::spawn(move || {
                                let _ = serve(stream, &greeting, &*script, &commands, &messages);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Ok(Self {
            addr,
            commands,
            messages,
            stop,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every command line received so far, in order, across connections.
    pub fn commands(&self) -> Vec<String> {
        self.commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every message content received after a 354 (CRLF lines, dots unstuffed).
    pub fn messages(&self) -> Vec<Vec<u8>> {
        self.messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until a command satisfying `matches` has been received; returns it.
    pub fn wait_for_command(
        &self,
        matches: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String> {
        super::wait::poll_until("a matching command at the scripted server", timeout, || {
            self.commands().into_iter().find(|c| matches(c))
        })
    }
}

fn serve(
    stream: TcpStream,
    greeting: &str,
    script: &Script,
    commands: &Mutex<Vec<String>>,
    messages: &Mutex<Vec<Vec<u8>>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let send = |writer: &mut TcpStream, reply: &str| -> std::io::Result<()> {
        let mut wire = reply.replace("\r\n", "\n").replace('\n', "\r\n");
        wire.push_str("\r\n");
        writer.write_all(wire.as_bytes())
    };
    send(&mut writer, greeting)?;
    loop {
        let mut raw = Vec::new();
        if reader.read_until(b'\n', &mut raw)? == 0 {
            return Ok(());
        }
        let line = String::from_utf8_lossy(&raw)
            .trim_end_matches(['\r', '\n'])
            .to_string();
        commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line.clone());
        let Some(reply) = script(&line) else {
            return Ok(());
        };
        send(&mut writer, &reply)?;
        if !reply.starts_with("354") {
            continue;
        }
        let mut content = Vec::new();
        loop {
            let mut raw = Vec::new();
            if reader.read_until(b'\n', &mut raw)? == 0 {
                return Ok(());
            }
            if raw == b".\r\n" || raw == b".\n" {
                break;
            }
            let unstuffed = raw.strip_prefix(b".").unwrap_or(&raw);
            content.extend_from_slice(unstuffed);
        }
        messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(content);
        let Some(reply) = script(".") else {
            return Ok(());
        };
        send(&mut writer, &reply)?;
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A loopback server that sends its greeting one byte every `pause` (a "slow drip"), then
/// answers EHLO with a one-line 250 and closes on anything else. Each connection is served until
/// the client goes away or the server is dropped.
pub struct DripServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    sent: Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl DripServer {
    /// Starts on a free 127.0.0.1 port; `greeting` without CRLF (it is added).
    pub fn start(greeting: &str, pause: Duration) -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).context(|| "bind drip server".into())?;
        let addr = listener
            .local_addr()
            .context(|| "drip server address".into())?;
        listener
            .set_nonblocking(true)
            .context(|| "non-blocking listener".into())?;
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let wire = format!("{greeting}\r\n").into_bytes();
        let thread = {
            let (stop, sent) = (stop.clone(), sent.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (stop, sent, wire) = (stop.clone(), sent.clone(), wire.clone());
                            std::thread::spawn(move || {
                                let _ = drip(stream, &wire, pause, &stop, &sent);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Ok(Self {
            addr,
            stop,
            sent,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Greeting bytes written so far, over all connections.
    pub fn bytes_sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }
}

fn drip(
    mut stream: TcpStream,
    wire: &[u8],
    pause: Duration,
    stop: &AtomicBool,
    sent: &std::sync::atomic::AtomicUsize,
) -> std::io::Result<()> {
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    for byte in wire {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        // The pause is the behaviour under test (a server that trickles), not synchronisation.
        std::thread::sleep(pause);
        stream.write_all(std::slice::from_ref(byte))?;
        sent.fetch_add(1, Ordering::Relaxed);
    }
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if line.to_ascii_uppercase().starts_with("EHLO") {
        stream.write_all(b"250 drip.test\r\n")?;
    }
    Ok(())
}

impl Drop for DripServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
