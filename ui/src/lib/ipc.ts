// The only place that talks to the Rust side: typed wrappers over invoke() and listen().
// The command names and payloads mirror src-tauri/src/commands.rs and the engine's serde types.

import { invoke } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';
import { open } from '@tauri-apps/plugin-dialog';

export type Protocol = 'etrn' | 'atrn' | 'turn';
export type TlsMode = 'required' | 'opportunistic' | 'off';
export type TrayIcon = 'offline' | 'online' | 'busy' | 'attention';
export type WindowName = 'settings' | 'wizard' | 'activity' | 'mx';

export interface QueueServer {
  host: string;
  port: number;
  protocol: Protocol;
  tls: TlsMode;
  node?: string;
  username?: string;
  tls_ca?: string;
  tls_fingerprint?: string;
  allow_plaintext_auth: boolean;
  allow_insecure_turn: boolean;
  timeout: string;
}

export interface Config {
  domains: string[];
  queue_servers: QueueServer[];
  inbound: {
    listen: string[];
    deliver: string;
    hostname: string;
    max_message_size: number;
    max_connections: number;
    idle_timeout: string;
  };
  outbound?: {
    listen: string[];
    allow: string[];
    smarthost: string;
    smarthost_tls: TlsMode;
    smarthost_username?: string;
  };
  link: { probe: string; refetch_every: string; connect_back_timeout: string };
  dns: { nameservers: string[] };
  /** The tray app's own settings; posternd ignores them. Absent = the defaults. */
  desktop?: { notifications: boolean };
}

export interface ConfigState {
  path: string;
  exists: boolean;
  config: Config | null;
  error: string | null;
}

export interface Problem {
  server: string;
  domain: string;
  meaning: string;
  fix: string | null;
}

export interface StatusView {
  icon: TrayIcon;
  status_line: string;
  paused: boolean;
  fetching: boolean;
  messages_received: number;
  last_fetch: string | null;
  next_retry: string | null;
  problems: Problem[];
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

export interface Outcome {
  server: string;
  domain: string;
  step: string;
  code: number | null;
  text: string;
  disposition: 'released' | 'nothing_waiting' | 'retry' | 'permanent';
  meaning: string;
  fix: string | null;
  pending: number | null;
  received?: number;
}

/** An engine event (engine/src/events.rs), tagged by `type`. */
export type EngineEvent =
  | { type: 'listening'; addresses: string[] }
  | { type: 'fetch_started'; server: string; protocol: Protocol; domains: string[] }
  | { type: 'fetch_finished'; server: string; outcomes: Outcome[] }
  | { type: 'inbound_session_started'; peer: string; via: string }
  | {
      type: 'message_received';
      id: string;
      from: string;
      to: string[];
      size: number;
      peer: string;
      via: string;
      location: string;
    }
  | { type: 'message_refused'; peer: string; via: string; code: number; reason: string }
  | { type: 'inbound_session_ended'; peer: string; via: string; messages: number; end: string }
  | { type: 'warning'; message: string; fix: string | null }
  | { type: 'link_changed'; up: boolean; reason: string }
  | { type: 'retry_scheduled'; server: string; attempt: number; in_seconds: number; domains: string[] }
  | { type: 'fetch_failed'; server: string; domain: string; code: number | null; text: string; meaning: string; fix: string | null }
  | { type: 'dequeue_complete'; server: string | null; messages: number }
  | { type: 'connect_back_missing'; server: string; waited_seconds: number; causes: string[]; hint: string }
  | { type: 'paused' }
  | { type: 'resumed' }
  | { type: 'config_reloaded'; changes: string[] }
  | { type: string; [key: string]: unknown };

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
