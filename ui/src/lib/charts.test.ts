import { describe, expect, it } from 'vitest';
import { firstMessage, median, perDay, totals } from './charts';
import { span, stamp } from './time';

const stats = {
  received_today: 0, received_this_week: 0, outbound_queued: 0,
  per_day: [{ start: 86_400_000, received: 2, sent: 1 }, { start: 172_800_000, received: 3, sent: 0 }],
  per_hour: [],
  first_message: [{ link_up: 5000, seconds: 4 }, { link_up: 9000, seconds: 2 }],
};

describe('charts', () => {
  it('shapes the per-day counts for uPlot, x in seconds', () => {
    const d = perDay(stats);
    expect(d.x).toEqual([86_400, 172_800]);
    expect(d.series.map((s) => [s.label, s.values])).toEqual([['Received', [2, 3]], ['Sent', [1, 0]]]);
    expect(totals(stats.per_day)).toEqual({ received: 5, sent: 1 });
  });

  it('puts each link-up with its wait', () => {
    expect(firstMessage(stats)).toMatchObject({ x: [5, 9], series: [{ values: [4, 2] }] });
    expect(median([4, 2, 30])).toBe(4);
    expect(median([4, 2])).toBe(3);
    expect(median([])).toBeNull();
  });

  it('writes times and waits for people', () => {
    const now = new Date(2026, 11, 1, 12, 0, 0);
    expect(stamp(new Date(2026, 11, 1, 8, 5, 9).getTime(), now)).toBe('08:05:09');
    expect(stamp(new Date(2026, 10, 30, 8, 5, 9).getTime(), now)).toBe('2026-11-30 08:05:09');
    expect([span(4.2), span(125), span(3725)]).toEqual(['4 s', '2 min 5 s', '1 h 2 min']);
  });
});
