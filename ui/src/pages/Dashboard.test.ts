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
  stats: { received_today: 4, received_this_week: 17, outbound_queued: 1, per_day: buckets(30, 1), per_hour: buckets(48, 0), first_message: [{ link_up: Date.UTC(2026, 11, 1), seconds: 2.5 }] },
  stats_error: null,
  attention: [],
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
    expect(screen.getByTestId('wait').textContent).toMatch(/1 link-ups with mail; typically 3 s/);
  });

  it('lists what needs attention with its fix, and says when the journal is unreadable', async () => {
    backend([view({ stats: null, stats_error: 'no journal yet', attention: [{ subject: 'mail.isp.example:25 for office.example: domain not allowed', fix: 'Ask your ISP to add office.example', at: null }] })]);
    render(Dashboard);

    await screen.findByText(/domain not allowed/);
    expect(screen.getByTestId('attention').textContent).toMatch(/Fix: Ask your ISP to add office\.example/);
    expect(strong('received-today')).toBe('—');
    expect(screen.getByText('no journal yet')).toBeTruthy();
  });

  it('reads the dashboard again when a message arrives', async () => {
    backend([view(), view({ stats: { ...view().stats, received_today: 5 } })]);
    render(Dashboard);
    await screen.findByTestId('received-today');

    await emit('journal-entry', { at: Date.now(), kind: 'message', text: 'received from <a@b.example>', event: {} });

    await waitFor(() => expect(strong('received-today')).toBe('5'));
  });
});
