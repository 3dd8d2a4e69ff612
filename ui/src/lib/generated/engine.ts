// Generated from the engine's Rust types by src-tauri/engine/src/bindings.rs; do not edit.
// Regenerate: UPDATE_TS_BINDINGS=1 cargo test -p postern-engine --lib bindings

export type Config = { 
/**
 * Lower-case ASCII domain names (IDNs as A-labels).
 */
domains: Array<string>, queue_servers: Array<QueueServer>, inbound: Inbound, outbound?: Outbound, link: Link, dns: Dns, 
/**
 * Read by the tray app only; absent in older files and front ends.
 */
desktop?: Desktop, 
/**
 * Where Postern keeps its own files (the inbound certificate, later the spool and the
 * journal). Extension; default [`default_state_dir`].
 */
state_dir?: string, 
/**
 * The mail-flow journal in the state folder.
 */
journal?: Journal, 
/**
 * The neighbours' domains this office is the backup MX for (§10).
 */
backup_for?: Array<BackupFor>, backup?: Backup, };

export type QueueServer = { host: string, 
/**
 * Default 25 for etrn/turn, 366 for atrn.
 */
port: number, protocol: Protocol, 
/**
 * Default `opportunistic` for etrn/turn, `required` for atrn.
 */
tls: TlsMode, 
/**
 * ETRN argument override, used verbatim (e.g. `#office` for Exim).
 */
node?: string, 
/**
 * The password is in the OS keyring under `username@host`.
 */
username?: string, tls_ca?: string, 
/**
 * SHA-256 of the server's DER certificate.
 */
tls_fingerprint?: string, allow_plaintext_auth: boolean, allow_insecure_turn: boolean, 
/**
 * Every connect, read and write towards this server (extension; default 30 s).
 */
timeout: string, };

export type Protocol = "etrn" | "atrn" | "turn";

export type TlsMode = "required" | "opportunistic" | "off";

export type Inbound = { listen: Array<string>, deliver: string, 
/**
 * Name in our 220 banner, EHLO and Received: headers (extension; default: this host's name).
 */
hostname: string, 
/**
 * Extension; default 50 MiB. Written in the file as bytes or with a K/M/G suffix.
 */
max_message_size: number, 
/**
 * Extension; default 50 concurrent sessions.
 */
max_connections: number, 
/**
 * Extension; default 5 min (RFC 5321 4.5.3.2 server timeout). Bounds each command line
 * as a whole and each wait inside DATA.
 */
idle_timeout: string, 
/**
 * Extension; default 20 sessions at a time from one client address.
 */
max_connections_per_client?: number, 
/**
 * Extension; default 100 NOOP, RSET, VRFY, EXPN or HELP per session (counted from the last
 * message accepted); then the session is closed.
 */
max_junk_commands?: number, 
/**
 * Extension; default 1 h: a session is closed at the next command after this long.
 */
max_session_time?: string, 
/**
 * The certificate (PEM chain) and key for STARTTLS; without them a self-signed pair is
 * made in the state folder at first start.
 */
tls_cert?: string | null, tls_key?: string | null, };

export type Outbound = { listen: Array<string>, allow: Array<string>, 
/**
 * `smtp://host:port` (STARTTLS per `smarthost_tls`) or `smtps://host:port` (implicit TLS).
 */
smarthost: string, smarthost_tls: TlsMode, smarthost_username?: string, 
/**
 * An extra trust anchor for the smarthost's certificate (an ISP's own CA, tests).
 */
smarthost_tls_ca?: string, 
/**
 * The outbound spool folder (default: `outbound` in the state folder; empty in a config
 * from a front end that left it out: see [`Outbound::spool_dir`]). Empty is not written
 * out: the file then has no `spool` line, which means the default.
 */
spool?: string, 
/**
 * Wall-clock time after which undelivered recipients bounce (never before 3 real attempts).
 */
max_queue_lifetime?: string, 
/**
 * The first retry wait after a temporary failure; doubled each time up to `retry_max`.
 */
retry_min?: string, retry_max?: string, 
/**
 * One warning to the sender after this long undelivered; zero = off.
 */
delay_warning?: string, };

export type Link = { 
/**
 * `auto` (the first queue server) or `host:port`.
 */
probe: string, 
/**
 * Zero = dequeue only on link-up.
 */
refetch_every: string, 
/**
 * Extension: how long to wait for the queuing server to connect back after an accepted
 * ETRN (default 2 min).
 */
connect_back_timeout: string, };

export type Dns = { nameservers: Array<string>, };

export type Desktop = { 
/**
 * Desktop notifications (mail released, refusals, nothing arrived, link lost).
 */
notifications: boolean, };

export type Journal = { 
/**
 * Off: nothing is recorded (the addresses of senders and recipients stay out of it).
 */
enabled: boolean, retention: string, };

export type BackupFor = { 
/**
 * Lower-case ASCII (IDNs as A-labels), never one of the office's own `domains`.
 */
domain: string, deliver_to: string, 
/**
 * How the neighbour may ask for its mail.
 */
release: Array<Release>, 
/**
 * The ATRN login; its password is in the keyring as `USERNAME@backup`.
 */
username?: string, 
/**
 * Keep the mail until asked (default); false: also try delivering on the retry schedule.
 */
hold: boolean, 
/**
 * Then the mail goes back to its sender with a DSN.
 */
max_hold: string, };

export type Backup = { 
/**
 * The ODMR/ATRN server (RFC 2645); empty when no `[[backup_for]]` allows atrn.
 */
odmr_listen: Array<string>, 
/**
 * Extension: the port of the neighbour's MX hosts for `deliver_to = "mx"` (25; tests).
 */
mx_port: number, 
/**
 * Extension: ETRN commands one client address may give per minute (0 = no limit).
 */
etrn_per_minute: number, };

export type Release = "etrn" | "atrn";

export type StatusView = { icon: TrayIcon, status_line: string, paused: boolean, fetching: boolean, messages_received: number, 
/**
 * "10:42" in the engine's local time; `None` before the first fetch.
 */
last_fetch: string | null, 
/**
 * The earliest automatic retry of a failed dequeue ("10:50").
 */
next_retry: string | null, problems: Array<Problem>, 
/**
 * Messages waiting in the outbound queue; `None` without `[outbound]`.
 */
outbound_queued?: number, };

export type Problem = { server: string, domain: string, meaning: string, fix: string | null, };

export type TrayIcon = "offline" | "online" | "busy" | "attention";

export type WindowName = "dashboard" | "settings" | "wizard" | "activity" | "mx" | "queue";

export type Event = { "type": "listening", addresses: Array<string>, } | { "type": "fetch_started", server: string, protocol: Protocol, domains: Array<string>, } | { "type": "fetch_finished", server: string, outcomes: Array<Outcome>, } | { "type": "inbound_session_started", peer: string, via: string, } | { "type": "message_received", id: string, from: string, to: Array<string>, size: number, peer: string, via: string, location: string, } | { "type": "message_refused", peer: string, via: string, code: number, reason: string, } | { "type": "inbound_session_ended", peer: string, via: string, messages: number, end: string, } | { "type": "warning", message: string, fix: string | null, } | { "type": "link_changed", up: boolean, reason: string, } | { "type": "retry_scheduled", server: string, attempt: number, in_seconds: number, domains: Array<string>, } | { "type": "fetch_failed", server: string, domain: string, code: number | null, text: string, meaning: string, fix: string | null, } | { "type": "dequeue_complete", server: string | null, messages: number, } | { "type": "connect_back_missing", server: string, waited_seconds: number, causes: Array<string>, hint: string, } | { "type": "config_reloaded", changes: Array<string>, } | { "type": "outbound_queued", id: string, from: string, to: Array<string>, size: number, } | { "type": "outbound_delivered", id: string, to: string, via: string, reply: string, } | { "type": "outbound_deferred", id: string, to: string, reply: string, attempts: number, next_attempt: string | null, } | { "type": "outbound_bounced", id: string, to: string, reply: string, dsn_sent: boolean, } | { "type": "outbound_stuck", id: string, to: Array<string>, waiting_minutes: number, reply: string, } | { "type": "outbound_dropped", id: string, } | { "type": "outbound_command_done", message: string, } | { "type": "backup_asked", domain: string, by: string, held: number, } | { "type": "backup_release_started", domain: string, trigger: string, held: number, target: string, } | { "type": "backup_delivered", id: string, domain: string, to: string, via: string, reply: string, } | { "type": "backup_release_finished", domain: string, delivered: number, deferred: number, bounced: number, problem: string | null, } | { "type": "backup_bounced", id: string, domain: string, to: string, reply: string, dsn_sent: boolean, } | { "type": "paused" } | { "type": "resumed" };

export type Outcome = { 
/**
 * `host:port` of the queuing server.
 */
server: string, domain: string, 
/**
 * The command that got this reply (`ETRN office.test`), or the failed step (`connect`).
 */
step: string, 
/**
 * The reply code; `None` when no reply came (connection refused, timeout, TLS failure).
 */
code: number | null, 
/**
 * The server's own words (or the local error).
 */
text: string, disposition: Disposition, 
/**
 * What happened, in plain language.
 */
meaning: string, 
/**
 * What to do about it, when anything is to be done.
 */
fix: string | null, 
/**
 * The `253 <n>` count of waiting messages, when the server reported it.
 */
pending: number | null, 
/**
 * ATRN/TURN: messages received over the turned-around connection.
 */
received?: number | null, };

export type Disposition = "released" | "nothing_waiting" | "retry" | "permanent";

export type LinkState = "unknown" | "up" | "down";

export type JournalKind = "fetch" | "message" | "problem" | "link" | "config" | "backup";

export type JournalQuery = { 
/**
 * Only entries at or after this time (Unix milliseconds).
 */
since?: number | null, kind?: JournalKind | null, 
/**
 * Only entries whose text contains this (case-insensitive for ASCII).
 */
grep?: string | null, 
/**
 * The next page: entries older than this id.
 */
before_id?: number | null, 
/**
 * At most this many (default 200, at most 10,000).
 */
limit?: number | null, };

export type JournalEntry = { id: number, 
/**
 * Unix milliseconds.
 */
at: number, kind: JournalKind, text: string, 
/**
 * The engine event the entry came from.
 */
event: unknown, };

export type JournalPage = { entries: Array<JournalEntry>, more: boolean, };

export type JournalStats = { received_today: number, received_this_week: number, 
/**
 * Messages of the outbound relay still waiting for a recipient, as the journal tells it
 * (queued, and neither every recipient delivered or bounced nor dropped). The dashboard
 * shows the spool's own count instead while the relay runs ([`crate::dashboard`]).
 */
outbound_queued: number, 
/**
 * The last 30 days, oldest first, today last.
 */
per_day: Array<Bucket>, 
/**
 * The last 48 hours, oldest first, this hour last.
 */
per_hour: Array<Bucket>, 
/**
 * Every dequeue of the last 30 days, oldest first, with the wait for its first message.
 */
per_dequeue: Array<DequeueWait>, };

export type Bucket = { start: number, received: number, sent: number, };

export type DashboardView = { icon: TrayIcon, 
/**
 * The tray's line ("Online · last fetch 10:42 · 12 messages").
 */
status_line: string, link: LinkState, 
/**
 * When the link state last changed (RFC 3339).
 */
link_since: string | null, paused: boolean, fetching: boolean, 
/**
 * Messages received since the engine started.
 */
received_since_start: number, servers: Array<ServerView>, 
/**
 * From the journal; `None` when it could not be read (`stats_error` says why).
 */
stats: JournalStats | null, stats_error: string | null, 
/**
 * What needs the admin, each with its fix; empty when all is well.
 */
attention: Array<Attention>, 
/**
 * The backup MX: per neighbour's domain, what is held and when the neighbour last fetched
 * it; empty without `[[backup_for]]`.
 */
backup: Array<HeldStatus>, };

export type ServerView = { 
/**
 * `host:port`.
 */
server: string, fetching: boolean, 
/**
 * When the last dequeue finished (RFC 3339); `None` before the first.
 */
last_at: string | null, 
/**
 * Its reply for each domain (code, text, meaning).
 */
last_outcomes: Array<Outcome>, 
/**
 * The next attempt (RFC 3339): a retry after a failure, else the next scheduled dequeue.
 */
next_attempt: string | null, 
/**
 * The next attempt is a retry (`attempt` failures in a row so far).
 */
retrying: boolean, attempt: number, 
/**
 * An ETRN was accepted and the server has not connected back yet.
 */
awaiting_connect_back: boolean, };

export type Attention = { subject: string, fix: string | null, 
/**
 * When it was reported (Unix milliseconds), for the journal's warnings.
 */
at: number | null, };

export type HeldStatus = { domain: string, 
/**
 * Messages held for it now.
 */
held: number, 
/**
 * When the neighbour last asked for it (ETRN or ATRN; RFC 3339), kept across restarts.
 */
last_fetch: string | null, 
/**
 * False for mail left from a `[[backup_for]]` that was removed (it goes back to senders).
 */
configured: boolean, 
/**
 * The held messages' size together (bytes).
 */
bytes: number, 
/**
 * When the oldest held message arrived (RFC 3339).
 */
oldest: string | null, 
/**
 * How the neighbour last asked: `ETRN from 192.0.2.7`, `ATRN by neighbour`.
 */
last_fetch_by: string | null, 
/**
 * When the oldest held message goes back to its sender (arrival + `max_hold`; RFC 3339).
 */
returns_at: string | null, 
/**
 * The oldest held message is past three quarters of `max_hold`, or its domain is no
 * longer backed up here.
 */
needs_attention: boolean, };

export type DequeueWait = { 
/**
 * When Postern asked (its `fetch_started`; Unix milliseconds).
 */
at: number, 
/**
 * `host:port` of the queuing server.
 */
server: string, 
/**
 * `etrn`, `atrn` or `turn`.
 */
protocol: string, 
/**
 * Seconds from the request to the first message; `None`: the dequeue brought no mail
 * (none arrived before the server's next dequeue, nor within an hour).
 */
seconds: number | null, 
/**
 * For the server's first dequeue after a link-up: seconds from that link-up to the first
 * message (the request's own wait plus the link check before it).
 */
from_link_up: number | null, 
/**
 * Messages that arrived over that way in the same window.
 */
messages: number, };
