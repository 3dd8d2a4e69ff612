// Times as the windows show them, in this computer's local time (the engine's too), and sizes.

const pad = (n: number) => String(n).padStart(2, '0');

function sameDay(a: Date, b: Date): boolean {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

/** "2026-12-01" */
export function day(d: Date): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** "08:15:02" today, else "2026-11-30 08:15:02". */
export function stamp(ms: number, now: Date = new Date()): string {
  const d = new Date(ms);
  const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return sameDay(d, now) ? clock : `${day(d)} ${clock}`;
}

/** "08:15" today, else "2026-11-30 08:15"; from an RFC 3339 time; "—" for none. */
export function when(rfc3339: string | null | undefined, now: Date = new Date()): string {
  if (!rfc3339) return '—';
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return rfc3339;
  const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return sameDay(d, now) ? clock : `${day(d)} ${clock}`;
}

/** "4 s", "2 min 5 s", "1 h 3 min". */
export function span(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ''}`;
  return `${Math.floor(s / 3600)} h${Math.floor((s % 3600) / 60) ? ` ${Math.floor((s % 3600) / 60)} min` : ''}`;
}

/** "812 bytes", "4 KB", "2.5 MB", as the journal writes sizes. */
export function size(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
  if (bytes >= 1024) return `${Math.ceil(bytes / 1024)} KB`;
  return `${bytes} bytes`;
}
