// The dashboard's charts as data: the journal's counts (engine/src/journal/stats.rs) shaped
// for uPlot (x in Unix seconds, one array per series), and the totals written under each chart.
import type { JournalStats } from './generated/engine';

export interface Series {
  label: string;
  values: (number | null)[];
  /** A CSS variable of app.css, e.g. '--accent'. */
  color: string;
}

export interface ChartData {
  x: number[];
  series: Series[];
}

function flow(buckets: JournalStats['per_day']): ChartData {
  return {
    x: buckets.map((b) => b.start / 1000),
    series: [
      { label: 'Received', values: buckets.map((b) => b.received), color: '--accent' },
      { label: 'Sent', values: buckets.map((b) => b.sent), color: '--ok' },
    ],
  };
}

export const perDay = (s: JournalStats) => flow(s.per_day);
export const perHour = (s: JournalStats) => flow(s.per_hour);

export function firstMessage(s: JournalStats): ChartData {
  return {
    x: s.first_message.map((f) => f.link_up / 1000),
    series: [{ label: 'Seconds to the first message', values: s.first_message.map((f) => f.seconds), color: '--warn' }],
  };
}

export function totals(buckets: JournalStats['per_day']): { received: number; sent: number } {
  return buckets.reduce((t, b) => ({ received: t.received + b.received, sent: t.sent + b.sent }), { received: 0, sent: 0 });
}

/** The middle of the waits (seconds), or null without any. */
export function median(values: number[]): number | null {
  if (!values.length) return null;
  const v = [...values].sort((a, b) => a - b);
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}
