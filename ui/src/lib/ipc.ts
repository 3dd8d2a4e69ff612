// The only place that talks to the Rust side: typed wrappers over invoke() and listen().
// The command names and payloads mirror src-tauri/src/commands.rs and the engine's serde types.

import { invoke } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';
import { open } from '@tauri-apps/plugin-dialog';

// The config, status and event types are generated from the engine's Rust types (see the
// header of generated/engine.ts); the rest below are still written by hand.
import type { Config, Event, Outbound, Protocol, StatusView, WindowName } from './generated/engine';
export type {
  Config,
  Disposition,
  Outcome,
  Problem,
  Protocol,
  QueueServer,
  StatusView,
  TlsMode,
  TrayIcon,
  WindowName,
} from './generated/engine';

export interface ConfigState {
  path: string;
  exists: boolean;
  config: Config | null;
  error: string | null;
}

export interface ServerReport {
  server: string;
  greeting: string;
  etrn: boolean;
  atrn: boolean;
  starttls: boolean;
  auth: string[];
  recommended: Protocol | null;
  advice: string;
}

/** An engine event (engine/src/events.rs), tagged by `type`; the open case keeps an older UI
 *  working with a newer engine's events. */
export type EngineEvent = Event | { type: string; [key: string]: unknown };

/** engine/src/mx: one finding of the MX checker. */
export interface MxFinding {
  id: string;
  severity: 'ok' | 'info' | 'warning' | 'error';
  subject: string;
  evidence: string;
  fix?: string;
}

export interface MxReport {
  domain: string;
  /** False when the domain's own MX lookup failed. */
  complete: boolean;
  office_host?: string;
  mx: { preference: number; host: string; addresses: string[] }[];
  recommended_protocol?: Protocol;
  findings: MxFinding[];
}

/** check_reachability: can mail released by ETRN reach this computer? */
export type Reachability = 'reachable' | 'needs_forwarding' | 'unreachable' | 'unknown';

export interface ReachabilityReport {
  verdict: Reachability;
  findings: MxFinding[];
}

/** Rejections from commands arrive as plain strings; anything else becomes one. */
function message(e: unknown): string {
  return typeof e === 'string' ? e : e instanceof Error ? e.message : JSON.stringify(e);
}

async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    throw new Error(message(e));
  }
}

export const getStatus = () => call<StatusView>('get_status');
export const fetchNow = () => call<null>('fetch_now');
export const pause = () => call<null>('pause');
export const resume = () => call<null>('resume');
export const loadConfig = () => call<ConfigState>('load_config');
export const saveConfig = (config: Config) => call<StatusView>('save_config', { config });
export const setSecret = (name: string, password: string) =>
  call<null>('set_secret', { name, password });
export const probeQueueServer = (host: string, port: number) =>
  call<ServerReport>('probe_queue_server', { host, port });
export const testDelivery = (target: string) => call<string>('test_delivery', { target });
export const recentActivity = () => call<EngineEvent[]>('recent_activity');
export const openWindow = (window: WindowName) => call<null>('open_window', { window });
export const checkMx = (domain: string) => call<MxReport>('check_mx', { domain });
export const checkReachability = (domains: string[], queueHost: string | null, listenAddress: string, listenPort: number) =>
  call<ReachabilityReport>('check_reachability', { domains, queueHost, listenAddress, listenPort });

export const onStatus = (cb: (s: StatusView) => void): Promise<UnlistenFn> =>
  listen<StatusView>('status', (e) => cb(e.payload));
export const onEngineEvent = (cb: (e: EngineEvent) => void): Promise<UnlistenFn> =>
  listen<EngineEvent>('engine-event', (e) => cb(e.payload));

/** A folder chosen in the OS dialog, or null when cancelled. */
export async function pickFolder(title: string): Promise<string | null> {
  const chosen = await open({ directory: true, multiple: false, title });
  return typeof chosen === 'string' ? chosen : null;
}

/** Closes the window this page is in (the app stays in the tray). */
export async function closeThisWindow(): Promise<void> {
  const { getCurrentWindow } = await import('@tauri-apps/api/window');
  await getCurrentWindow().close();
}

/** Start at login: the tray app registers itself (`postern --autostart`). */
export const startsAtLogin = () => call<boolean>('starts_at_login');
export const setStartAtLogin = (on: boolean) => call<boolean>('set_start_at_login', { on });

/** engine/src/outbound/queue.rs: one message of the outbound queue (`posternd queue list --json`). */
export interface QueueEntry {
  id: string;
  sender: string;
  recipients: { address: string; state: 'queued' | 'delivered' | 'bounced' | 'expired'; reply: string | null }[];
  size: number;
  age_seconds: number;
  attempts: number;
  last_reply: string | null;
  meaning: string | null;
  /** RFC 3339; null: at the next chance (when the link is up). */
  next_attempt: string | null;
}

export const queueList = () => call<QueueEntry[]>('queue_list');
/** Retry, Drop (no DSN) or Flush, through the engine's queue task; resolves to its answer. */
export const queueRetry = (id: string) => call<string>('queue_action', { action: { action: 'retry', id } });
export const queueDrop = (id: string) => call<string>('queue_action', { action: { action: 'drop', id } });
export const queueFlush = () => call<string>('queue_action', { action: { action: 'flush' } });
/** The wizard's live test of a smarthost (engine/src/mx/smarthost.rs): no mail, no password. */
export const probeSmarthost = (outbound: Outbound) => call<MxFinding[]>('probe_smarthost', { outbound });
// The journal (Activity) and the dashboard: engine/src/journal, engine/src/dashboard.rs.
import type { DashboardView, JournalEntry, JournalPage, JournalQuery } from './generated/engine';
export type {
  Attention,
  Bucket,
  DashboardView,
  DequeueWait,
  HeldStatus,
  JournalEntry,
  JournalKind,
  JournalPage,
  JournalQuery,
  JournalStats,
  LinkState,
  ServerView,
} from './generated/engine';

/** A journal row as it happens (bridge.rs `journal-entry`): no id yet. */
export type LiveEntry = Omit<JournalEntry, 'id'> & { id?: number };

export const readJournal = (query: JournalQuery) => call<JournalPage>('read_journal', { query });
export const getDashboard = () => call<DashboardView>('dashboard');
export const onJournalEntry = (cb: (e: LiveEntry) => void): Promise<UnlistenFn> =>
  listen<LiveEntry>('journal-entry', (e) => cb(e.payload));
