import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, render, screen, waitFor } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { emit } from '@tauri-apps/api/event';
// uPlot asks matchMedia for the pixel ratio when it loads; jsdom has none (nor a canvas: the
// charts' totals below them are what these tests read).
vi.hoisted(() => {
  window.matchMedia ??= ((media: string) => ({
    matches: false, media, onchange: null, addEventListener() {}, removeEventListener() {},
    addListener() {}, removeListener() {}, dispatchEvent: () => false,
  })) as unknown as typeof window.matchMedia;
  HTMLCanvasElement.prototype.getContext = (() => null) as never;
});
import Dashboard from './Dashboard.svelte';

afterEach(() => cleanup());

const status = { icon: 'online', status_line: 'Online · last fetch 10:42 · 12 messages', paused: false, fetching: false, messages_received: 12, last_fetch: '10:42', problems: [] };
const buckets = (n: number, received: number) => Array.from({ length: n }, (_, i) => ({ start: Date.UTC(2026, 10, 1) + i * 3600_000, received, sent: 0 }));
const view = (overrides: object = {}) => ({
  icon: 'online', status_line: status.status_line, link: 'up', link_since: '2026-12-01T08:00:00+01:00', paused: false, fetching: false,
  received_since_start: 12,
  servers: [{ server: 'mail.isp.example:25', fetching: false, last_at: '2026-12-01T08:00:05+01:00',
    last_outcomes: [{ server: 'mail.isp.example:25', domain: 'office.example', step: 'ETRN office.example', code: 250, text: 'Queuing started', disposition: 'released', meaning: 'the server is sending the waiting mail', fix: null, pending: null }],
    next_attempt: '2026-12-01T08:15:05+01:00', retrying: false, attempt: 0, awaiting_connect_back: false }],
  stats: { received_today: 4, received_this_week: 17, outbound_queued: 1, per_day: buckets(30, 1), per_hour: buckets(48, 0),
    per_dequeue: [{ at: Date.UTC(2026, 11, 1), server: 'mail.isp.example:25', protocol: 'etrn', seconds: 2.5, from_link_up: 3.5, messages: 2 },
      { at: Date.UTC(2026, 11, 1, 1), server: 'mail.isp.example:25', protocol: 'etrn', seconds: null, from_link_up: null, messages: 0 }] },
  stats_error: null,
  attention: [],
  backup: [],
  ...overrides,
});

function backend(answers: object[]) {
  let n = 0;
  clearMocks();
  mockIPC((cmd) => {
    if (cmd === 'get_status') return status;
    if (cmd === 'dashboard') return answers[Math.min(n++, answers.length - 1)];
    return null;
  }, { shouldMockEvents: true });
}

const strong = (id: string) => screen.getByTestId(id).querySelector('strong')?.textContent;

describe('dashboard', () => {
  it('shows the link, the counts, each server and that all is well', async () => {
    backend([view()]);
    render(Dashboard);

    await screen.findByTestId('received-today');
    expect(strong('link')).toBe('Online');
    expect(strong('received-today')).toBe('4');
    expect(strong('received-week')).toBe('17');
    expect(strong('outbound-queue')).toBe('1');
    expect(screen.getByTestId('servers').textContent).toMatch(/mail\.isp\.example:25.*250 office\.example: the server is sending the waiting mail/s);
    expect(screen.getByTestId('attention').textContent).toMatch(/Nothing needs your attention/);
    expect(screen.getByTestId('total-days').textContent).toBe('30 received, 0 sent in 30 days');
    expect(screen.getByTestId('wait').textContent?.trim()).toBe('2 dequeues in 30 days; typically 3 s from the request to the first message; 1 brought no mail.');
    expect(screen.queryByTestId('backup')).toBeNull();
  });

  it('lists what needs attention with its fix, and says when the journal is unreadable', async () => {
    backend([view({ stats: null, stats_error: 'no journal yet', attention: [{ subject: 'mail.isp.example:25 for office.example: domain not allowed', fix: 'Ask your ISP to add office.example', at: null }] })]);
    render(Dashboard);

    await screen.findByText(/domain not allowed/);
    expect(screen.getByTestId('attention').textContent).toMatch(/Fix: Ask your ISP to add office\.example/);
    expect(strong('received-today')).toBe('—');
    expect(screen.getByText('no journal yet')).toBeTruthy();
  });

  it('shows each backed-up domain: held, size, oldest, last fetch and how, and what needs attention', async () => {
    const backup = [
      { domain: 'neighbour.example', held: 12, bytes: 48_000, oldest: '2026-12-01T07:00:00+01:00', last_fetch: '2026-12-01T08:30:00+01:00',
        last_fetch_by: 'ETRN from 192.0.2.7', configured: true, returns_at: '2026-12-08T07:00:00+01:00', needs_attention: false },
      { domain: 'quiet.example', held: 0, bytes: 0, oldest: null, last_fetch: null, last_fetch_by: null, configured: true, returns_at: null, needs_attention: false },
      { domain: 'gone.example', held: 1, bytes: 700, oldest: '2026-11-30T07:00:00+01:00', last_fetch: null, last_fetch_by: null, configured: false, returns_at: null, needs_attention: true },
    ];
    backend([view({ backup })]);
    render(Dashboard);

    const card = await screen.findByTestId('backup');
    const tiles = [...card.querySelectorAll('[data-domain]')];
    expect(tiles.map((t) => t.getAttribute('data-domain'))).toEqual(['neighbour.example', 'quiet.example', 'gone.example']);
    expect(tiles[0].querySelector('[data-testid=held]')?.textContent).toBe('12 held');
    expect(tiles[0].querySelector('[data-testid=held-size]')?.textContent).toMatch(/^47 KB, oldest since (2026-12-01 )?\d\d:00$/);
    expect(tiles[0].querySelector('[data-testid=last-fetch]')?.textContent).toMatch(/fetched (2026-12-01 )?\d\d:30 \(ETRN from 192\.0\.2\.7\)/);
    expect(tiles[1].querySelector('[data-testid=held]')?.textContent).toBe('nothing held');
    expect(tiles[1].querySelector('[data-testid=last-fetch]')?.textContent).toMatch(/never fetched/);
    expect(tiles[1].querySelector('[data-testid=held-size]')).toBeNull();
    expect(tiles[2].querySelector('[data-testid=held-attention]')?.textContent).toMatch(/No longer backed up here/);
    expect(tiles[2].classList.contains('attention')).toBe(true);
    expect(tiles[0].classList.contains('attention')).toBe(false);
  });

  it('reads the dashboard again when a message arrives', async () => {
    backend([view(), view({ stats: { ...view().stats, received_today: 5 } })]);
    render(Dashboard);
    await screen.findByTestId('received-today');

    await emit('journal-entry', { at: Date.now(), kind: 'message', text: 'received from <a@b.example>', event: {} });

    await waitFor(() => expect(strong('received-today')).toBe('5'));
  });
});
