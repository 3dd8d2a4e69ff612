import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { emit } from '@tauri-apps/api/event';
import Activity from './Activity.svelte';

afterEach(() => cleanup());

const status = { icon: 'online', status_line: 'Online · last fetch 10:42 · 12 messages', paused: false, fetching: false, messages_received: 12, last_fetch: '10:42', problems: [] };
const at = new Date(2026, 11, 1, 8, 15, 2).getTime();
const entries = [
  { id: 3, at: at + 2000, kind: 'message', text: 'received from <anna@customer.example>', event: {} },
  { id: 2, at: at + 1000, kind: 'problem', text: 'mail.isp.example:25 office.example: 459 service unavailable', event: {} },
  { id: 1, at, kind: 'link', text: 'link up', event: {} },
];

function backend(queries: any[], more = true) {
  clearMocks();
  mockIPC((cmd, args: any) => {
    if (cmd === 'get_status') return status;
    if (cmd === 'read_journal') {
      queries.push(args.query);
      if (args.query.before_id) return { entries: [{ id: 0, at: at - 1000, kind: 'config', text: 'settings applied', event: {} }], more: false };
      const hits = entries.filter((e) => (!args.query.kind || e.kind === args.query.kind) && (!args.query.grep || e.text.includes(args.query.grep)));
      return { entries: hits, more };
    }
    return null;
  }, { shouldMockEvents: true });
}

const texts = () => [...document.querySelectorAll('[data-testid=activity] tbody td.text')].map((td) => td.textContent);

describe('activity', () => {
  it('shows the journal with time and kind, then older entries', async () => {
    const queries: any[] = [];
    backend(queries);
    render(Activity);

    await screen.findByText('link up');
    expect(texts()).toEqual(['received from <anna@customer.example>', 'mail.isp.example:25 office.example: 459 service unavailable', 'link up']);
    const times = [...document.querySelectorAll('td.time')].map((td) => td.textContent);
    expect(times[2]).toMatch(/^(2026-12-01 )?08:15:02$/);
    expect([...document.querySelectorAll('svg[data-kind]')].map((s) => s.getAttribute('aria-label'))).toEqual(['Message', 'Problem', 'Link']);
    expect(queries[0]).toEqual({ limit: 100 });

    await fireEvent.click(screen.getByRole('button', { name: 'Show older' }));

    await screen.findByText('settings applied');
    expect(queries[1]).toEqual({ limit: 100, before_id: 1 });
    expect(screen.queryByRole('button', { name: 'Show older' })).toBeNull();
  });

  it('asks the engine for one kind', async () => {
    const queries: any[] = [];
    backend(queries, false);
    render(Activity);
    await screen.findByText('link up');

    await fireEvent.change(screen.getByLabelText('Show'), { target: { value: 'problem' } });

    await waitFor(() => expect(texts()).toEqual(['mail.isp.example:25 office.example: 459 service unavailable']));
    expect(queries[queries.length - 1]).toEqual({ limit: 100, kind: 'problem' });
  });

  it('shows the neighbour fetching its held mail as a backup row, live and filtered', async () => {
    const queries: any[] = [];
    backend(queries, false);
    render(Activity);
    await screen.findByText('link up');

    await fireEvent.change(screen.getByLabelText('Show'), { target: { value: 'backup' } });
    await waitFor(() => expect(queries[queries.length - 1]).toEqual({ limit: 100, kind: 'backup' }));
    await emit('journal-entry', { at: Date.now(), kind: 'backup', text: 'backup MX: neighbour.example asked for its mail (ETRN from 192.0.2.7): 12 held', event: {} });
    await emit('journal-entry', { at: Date.now(), kind: 'message', text: 'received from <x@y.example>', event: {} });

    await screen.findByText(/asked for its mail \(ETRN from 192\.0\.2\.7\)/);
    expect(texts()).toEqual(['backup MX: neighbour.example asked for its mail (ETRN from 192.0.2.7): 12 held']);
    expect(document.querySelector('svg[data-kind=backup]')?.getAttribute('aria-label')).toBe('Backup MX');
  });

  it('adds live entries that match the filter on top', async () => {
    backend([], false);
    render(Activity);
    await screen.findByText('link up');

    await emit('journal-entry', { at: Date.now(), kind: 'message', text: 'received from <bob@supplier.example>', event: {} });

    await waitFor(() => expect(texts()[0]).toBe('received from <bob@supplier.example>'));
    expect(texts()).toHaveLength(4);
  });

  it('drops a live row once the journal has it, when the filter changes', async () => {
    backend([], false);
    render(Activity);
    await screen.findByText('link up');
    const live = { at: Date.now(), kind: 'message', text: 'received from <bob@supplier.example>', event: {} };
    await emit('journal-entry', live);
    await waitFor(() => expect(texts()).toHaveLength(4));
    entries.unshift({ id: 4, ...live, at: live.at + 3 });

    await fireEvent.change(screen.getByLabelText('Show'), { target: { value: 'message' } });

    await waitFor(() => expect(texts()).toEqual(['received from <bob@supplier.example>', 'received from <anna@customer.example>']));
    entries.shift();
  });

  it('says when the journal cannot be read', async () => {
    clearMocks();
    mockIPC((cmd) => {
      if (cmd === 'get_status') return status;
      if (cmd === 'read_journal') throw 'Postern is not running: start it (the tray app postern) and try again';
      return null;
    }, { shouldMockEvents: true });
    render(Activity);

    expect((await screen.findByRole('alert')).textContent).toMatch(/Postern is not running/);
  });
});
