// Field checks for the wizard and the settings pane. Each returns null when the value is fine,
// else one sentence an office manager understands: what is wrong and what to write instead.
// The engine validates again on save; these only make mistakes visible while typing.

export type Check = string | null;

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

export function domain(value: string): Check {
  const v = value.trim().replace(/\.$/, '');
  if (!v) return 'Enter your mail domain, the part after @ in your addresses (e.g. office.example).';
  if (v.includes('@')) return 'Enter only the part after @ (e.g. office.example), not a whole address.';
  if (/\s/.test(v)) return 'A domain has no spaces.';
  const labels = v.split('.');
  if (labels.length < 2) return `"${v}" is not a full domain: it needs a dot, like office.example.`;
  if (v.length > 253 || !labels.every((l) => LABEL.test(l) || /^xn--/i.test(l)))
    return `"${v}" is not a valid domain: use letters, digits and hyphens between the dots.`;
  return null;
}

export function domains(list: string[]): Check {
  const filled = list.map((d) => d.trim()).filter(Boolean);
  if (filled.length === 0) return 'Enter at least one mail domain.';
  for (const d of filled) {
    const problem = domain(d);
    if (problem) return problem;
  }
  if (new Set(filled.map((d) => d.toLowerCase())).size !== filled.length)
    return 'A domain is listed twice; remove the copy.';
  return null;
}

export function host(value: string): Check {
  const v = value.trim();
  if (!v) return 'Enter the server name your ISP gave you (e.g. mail.isp.example).';
  if (/[\s/@]/.test(v) || v.includes('://'))
    return 'Enter only the server name (e.g. mail.isp.example), without spaces, "smtp://" or "@".';
  if (/^\d+\.\d+\.\d+\.\d+$/.test(v)) {
    return v.split('.').every((n) => Number(n) <= 255) ? null : `"${v}" is not a valid IP address.`;
  }
  if (v.includes(':')) return null; // IPv6 literal
  return v.split('.').every((l) => LABEL.test(l)) ? null : `"${v}" is not a valid server name.`;
}

export function port(value: string | number): Check {
  const s = String(value).trim();
  if (!/^\d+$/.test(s)) return 'A port is a number from 1 to 65535.';
  const n = Number(s);
  return n >= 1 && n <= 65535 ? null : 'A port is a number from 1 to 65535.';
}

/** `host:port` or `[v6]:port`; the form of [inbound] listen entries. */
export function socketAddress(value: string): Check {
  const v = value.trim();
  const m = /^(\[[0-9a-f:.]+\]|\d+\.\d+\.\d+\.\d+):(\d+)$/i.exec(v);
  if (!m) return `"${v}" is not an address and port like 0.0.0.0:25 or [::]:25.`;
  return port(m[2]);
}

const isIPv4 = (v: string) => /^\d{1,3}(\.\d{1,3}){3}$/.test(v) && v.split('.').every((n) => Number(n) <= 255);

function isIPv6(v: string): boolean {
  if (!v.includes(':') || !/^[0-9a-f:.]+$/i.test(v)) return false;
  const halves = v.split('::');
  if (halves.length > 2) return false;
  const groups = halves.flatMap((h) => (h === '' ? [] : h.split(':')));
  let count = groups.length;
  if (groups.length && groups[groups.length - 1].includes('.')) {
    if (!isIPv4(groups.pop()!)) return false;
    count += 1; // an IPv4 tail takes two groups
  }
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/i.test(g))) return false;
  return halves.length === 2 ? count < 8 : count === 8;
}

/** The address Postern listens on: an IPv4 or IPv6 address (no name, no port). */
export function listenAddress(value: string): Check {
  const v = value.trim().replace(/^\[|\]$/g, '');
  if (!v) return 'Enter the address to listen on: 0.0.0.0 for every network of this computer, or 127.0.0.1 for this computer only.';
  if (/^\d+\.\d+\.\d+\.\d+$/.test(v)) {
    return isIPv4(v) ? null : `"${v}" is not a valid IP address: each of the four numbers is 0 to 255.`;
  }
  if (isIPv6(v)) return null;
  return `"${v}" is not an IP address. Write 0.0.0.0 (every network of this computer), 127.0.0.1 (this computer only) or one of this computer's addresses, such as 192.168.1.20.`;
}

export function duration(value: string): Check {
  const v = value.trim();
  if (v === '0') return null;
  return /^(\d+\s*(ms|s|sec|m|min|h|hr|d)\s*)+$/.test(v)
    ? null
    : `"${v}" is not a duration: write e.g. 30s, 15m, 1h (or 0).`;
}

export function deliverTarget(value: string): Check {
  const v = value.trim();
  if (v.startsWith('maildir:')) {
    const path = v.slice('maildir:'.length);
    if (!path) return 'Choose the Maildir folder where mail should go.';
    if (!path.startsWith('/')) return 'The Maildir folder must be a full path, e.g. /srv/mail/Maildir.';
    return null;
  }
  if (v.startsWith('smtp://')) {
    const rest = v.slice('smtp://'.length).replace(/\/$/, '');
    const m = /^(.+?)(?::(\d+))?$/.exec(rest);
    if (!m || !m[1]) return 'Enter the office mail server as host:port, e.g. 192.168.1.10:25.';
    return host(m[1]) ?? (m[2] ? port(m[2]) : null);
  }
  return 'Choose a Maildir folder or the office mail server.';
}

/** `192.168.1.0/24` or `2001:db8::/32`. */
export function network(value: string): Check {
  const v = value.trim();
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(v);
  if (m) return Number(m[2]) <= 32 ? null : `"${v}": an IPv4 network ends in /0 to /32.`;
  if (/^[0-9a-f:]+\/\d+$/i.test(v)) return null;
  return `"${v}" is not a network like 192.168.1.0/24.`;
}

/** The keyring entry name: the server's user name, no spaces. */
export function username(value: string): Check {
  return /\s|@/.test(value) ? 'A user name has no spaces or "@".' : null;
}

export function listenPortAdvice(p: number): string {
  if (p === 25)
    return 'Port 25 is the standard mail port. Your ISP\'s queuing server delivers to it, so with ETRN your router must forward port 25 to this computer, and on Linux Postern needs permission to use it (CAP_NET_BIND_SERVICE).';
  if (p < 1024)
    return `Port ${p} is a privileged port: on Linux Postern needs permission (CAP_NET_BIND_SERVICE) to use it.`;
  return `Port ${p} needs no special permission. With ETRN, set your router to forward port 25 from the internet to port ${p} on this computer; with ATRN no forwarding is needed.`;
}
