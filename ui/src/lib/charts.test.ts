import { describe, expect, it } from 'vitest';
import { LANE, dequeueSummary, median, perDay, perDequeue, totals } from './charts';
import { size, span, stamp } from './time';

const stats = {
  received_today: 0, received_this_week: 0, outbound_queued: 0,
  per_day: [{ start: 86_400_000, received: 2, sent: 1 }, { start: 172_800_000, received: 3, sent: 0 }],
  per_hour: [],
  per_dequeue: [
    { at: 5000, server: 'mail.isp.example:25', protocol: 'etrn', seconds: 4, from_link_up: 5, messages: 3 },
    { at: 7000, server: 'mail.isp.example:25', protocol: 'etrn', seconds: null, from_link_up: null, messages: 0 },
    { at: 9000, server: 'mail.isp.example:25', protocol: 'etrn', seconds: 2, from_link_up: null, messages: 1 },
  ],
};

describe('charts', () => {
  it('shapes the per-day counts for uPlot, x in seconds', () => {
    const d = perDay(stats);
    expect(d.x).toEqual([86_400, 172_800]);
    expect(d.series.map((s) => [s.label, s.values])).toEqual([['Received', [2, 3]], ['Sent', [1, 0]]]);
    expect(totals(stats.per_day)).toEqual({ received: 5, sent: 1 });
  });

  it('puts each dequeue with its wait, and those without mail on their own lane, not at 0 s', () => {
    const d = perDequeue(stats);
    expect(d.x).toEqual([5, 7, 9]);
    expect(d.series[0].values).toEqual([4, null, 2]);
    expect(d.series[1]).toMatchObject({ values: [null, LANE, null], lane: 'no mail' });
    expect(d.series[0].lane).toBeUndefined();
    expect(dequeueSummary(stats)).toEqual({ dequeues: 3, withMail: 2, noMail: 1, median: 3 });
    expect(median([4, 2, 30])).toBe(4);
    expect(median([4, 2])).toBe(3);
    expect(median([])).toBeNull();
  });

  it('writes times and waits for people', () => {
    const now = new Date(2026, 11, 1, 12, 0, 0);
    expect(stamp(new Date(2026, 11, 1, 8, 5, 9).getTime(), now)).toBe('08:05:09');
    expect(stamp(new Date(2026, 10, 30, 8, 5, 9).getTime(), now)).toBe('2026-11-30 08:05:09');
    expect([span(4.2), span(125), span(3725)]).toEqual(['4 s', '2 min 5 s', '1 h 2 min']);
    expect([size(812), size(48_000), size(2_621_440)]).toEqual(['812 bytes', '47 KB', '2.5 MB']);
  });
});
