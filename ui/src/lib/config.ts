// Building a complete engine Config from the wizard's answers (every field the engine's serde
// form needs), and the defaults the engine would fill in.

import type { Config, Outbound, Protocol, QueueServer } from './generated/engine';

export const defaultPort = (p: Protocol) => (p === 'atrn' ? 366 : 25);
export const defaultTls = (p: Protocol) => (p === 'atrn' ? 'required' : 'opportunistic');

export function queueServer(host: string, protocol: Protocol, port?: number, username?: string): QueueServer {
  return {
    host: host.trim(),
    port: port ?? defaultPort(protocol),
    protocol,
    tls: defaultTls(protocol),
    ...(username ? { username } : {}),
    allow_plaintext_auth: false,
    allow_insecure_turn: false,
    timeout: '30s',
  };
}

export interface WizardAnswers {
  domains: string[];
  server: QueueServer;
  deliver: string;
  listenPort: number;
  /** The IP address to listen on; default 0.0.0.0 (every network of this computer). */
  listenAddress?: string;
  /** The optional outbound relay ("Sending mail"). */
  outbound?: Outbound;
}

export type SmarthostTls = 'starttls' | 'smtps';

/** The [outbound] section of the wizard's "Sending mail" answers; `listen` is where the
 * office's computers submit (an [outbound] listen entry). */
export function outboundFrom(host: string, port: number, tls: SmarthostTls, allow: string, username?: string, listen = '0.0.0.0:587'): Outbound {
  return {
    listen: [listen],
    allow: [allow.trim()],
    smarthost: `${tls === 'smtps' ? 'smtps' : 'smtp'}://${host.trim()}:${port}`,
    smarthost_tls: 'required',
    ...(username?.trim() ? { smarthost_username: username.trim() } : {}),
  };
}

export function configFrom(a: WizardAnswers): Config {
  return {
    domains: a.domains.map((d) => d.trim().toLowerCase()).filter(Boolean),
    queue_servers: [a.server],
    inbound: {
      listen: [listenEntry(a.listenAddress ?? '0.0.0.0', a.listenPort)],
      deliver: a.deliver.trim(),
      hostname: '', // the app fills in this computer's name
      max_message_size: 50 * 1024 * 1024,
      max_connections: 50,
      idle_timeout: '5m',
    },
    link: { probe: 'auto', refetch_every: '15m', connect_back_timeout: '2m' },
    dns: { nameservers: [] },
    desktop: { notifications: true },
    ...(a.outbound ? { outbound: a.outbound } : {}),
  };
}

/** An [inbound] listen entry: `ADDR:PORT`, IPv6 addresses in brackets. */
export function listenEntry(address: string, port: number): string {
  const a = address.trim().replace(/^\[|\]$/g, '');
  return a.includes(':') ? `[${a}]:${port}` : `${a}:${port}`;
}

/** The keyring name of a server's password. */
export const secretName = (s: QueueServer) => (s.username ? `${s.username}@${s.host}` : null);
