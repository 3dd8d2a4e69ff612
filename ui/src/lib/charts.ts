// The dashboard's charts as data: the journal's counts (engine/src/journal/stats.rs) shaped
// for uPlot (x in Unix seconds, one array per series), and the totals written under each chart.
import type { JournalStats } from './generated/engine';

export interface Series {
  label: string;
  values: (number | null)[];
  /** A CSS variable of app.css, e.g. '--accent'. */
  color: string;
  /**
   * Markers on a lane of their own along the bottom, not on the value axis, with this text as
   * their legend value: for events that have no value (a dequeue that brought no mail is not
   * a wait of 0 s).
   */
  lane?: string;
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

/** Where the "no mail" markers sit: any number, drawn on the lane's own scale. */
export const LANE = 1;

/**
 * Each dequeue (engine/src/journal/stats.rs `per_dequeue`): the seconds from the request to
 * the first message it brought, and apart from them, on their own lane, the dequeues that
 * brought none.
 */
export function perDequeue(s: JournalStats): ChartData {
  return {
    x: s.per_dequeue.map((d) => d.at / 1000),
    series: [
      { label: 'Seconds from the request to the first message', values: s.per_dequeue.map((d) => d.seconds), color: '--warn' },
      { label: 'Brought no mail', values: s.per_dequeue.map((d) => (d.seconds === null ? LANE : null)), color: '--muted', lane: 'no mail' },
    ],
  };
}

/** The dequeues' waits in a sentence's numbers. */
export function dequeueSummary(s: JournalStats): { dequeues: number; withMail: number; noMail: number; median: number | null } {
  const waits = s.per_dequeue.map((d) => d.seconds).filter((w): w is number => w !== null);
  return { dequeues: s.per_dequeue.length, withMail: waits.length, noMail: s.per_dequeue.length - waits.length, median: median(waits) };
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
