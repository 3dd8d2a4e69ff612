import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import Queue from './Queue.svelte';

afterEach(() => cleanup());

const status = { icon: 'online', status_line: 'Online · last fetch 10:42 · 12 messages · 2 outgoing queued', paused: false, fetching: false, messages_received: 12, last_fetch: '10:42', problems: [], outbound_queued: 2 };

const entry = (id: string, to: string, attempts: number) => ({
  id,
  sender: 'boss@office.example',
  recipients: [{ address: to, state: 'queued', reply: attempts ? '450 4.2.0 try later' : null }],
  size: 2048,
  age_seconds: 5400,
  attempts,
  last_reply: attempts ? '450 4.2.0 try later' : null,
  meaning: attempts ? 'the smarthost cannot take it right now; it will be tried again' : null,
  next_attempt: null,
});

function backend(calls: [string, any][]) {
  let queue = [entry('q1', 'slow@example.net', 3), entry('q2', 'far@example.net', 0)];
  clearMocks();
  mockIPC((cmd, args: any) => {
    calls.push([cmd, args]);
    if (cmd === 'get_status') return status;
    if (cmd === 'queue_list') return structuredClone(queue);
    if (cmd === 'queue_action') {
      const { action, id } = args.action;
      if (action === 'drop') {
        queue = queue.filter((e) => e.id !== id);
        return `${id} dropped (no DSN sent)`;
      }
      if (action === 'retry') return `${id} will be attempted now`;
      return `${queue.length} message(s) will be attempted now`;
    }
    return null;
  }, { shouldMockEvents: true });
}

const rowOf = (id: string) => document.querySelector(`tr[data-id="${id}"]`) as HTMLElement;

describe('outgoing queue', () => {
  it('lists every message with its recipients, attempts and last reply', async () => {
    backend([]);
    render(Queue);

    await screen.findByText('slow@example.net (queued)');
    const row = rowOf('q1');
    expect(row.textContent).toContain('boss@office.example');
    expect(row.textContent).toContain('2 KB');
    expect(row.textContent).toContain('1 h 30 min');
    expect(row.textContent).toContain('450 4.2.0 try later');
    expect(row.textContent).toContain('when the link is up');
    expect(rowOf('q2').textContent).toContain('—');
    expect((await screen.findByTestId('status-line')).textContent).toContain('2 outgoing queued');
  });

  it('Retry asks the engine to try that message now', async () => {
    const calls: [string, any][] = [];
    backend(calls);
    render(Queue);
    await screen.findByText('slow@example.net (queued)');

    await fireEvent.click(rowOf('q1').querySelector('button') as HTMLElement);

    expect((await screen.findByTestId('queue-notice')).textContent).toBe('q1 will be attempted now');
    expect(calls).toContainEqual(['queue_action', { action: { action: 'retry', id: 'q1' } }]);
  });

  it('Drop needs a second click, then the message is gone', async () => {
    const calls: [string, any][] = [];
    backend(calls);
    render(Queue);
    await screen.findByText('far@example.net (queued)');
    const dropButton = () => rowOf('q2').querySelectorAll('button')[1] as HTMLElement;

    await fireEvent.click(dropButton());
    expect(dropButton().textContent).toContain('Really drop?');
    expect(calls.some(([c]) => c === 'queue_action')).toBe(false);
    await fireEvent.click(dropButton());

    await waitFor(() => expect(rowOf('q2')).toBeNull());
    expect(calls).toContainEqual(['queue_action', { action: { action: 'drop', id: 'q2' } }]);
    expect(screen.getByTestId('queue-notice').textContent).toBe('q2 dropped (no DSN sent)');
  });

  it('an empty queue says so and cannot be flushed', async () => {
    clearMocks();
    mockIPC((cmd) => (cmd === 'queue_list' ? [] : cmd === 'get_status' ? status : null), { shouldMockEvents: true });
    render(Queue);

    expect(await screen.findByText('No outgoing mail is waiting.')).toBeTruthy();
    expect((screen.getByRole('button', { name: 'Try all now' }) as HTMLButtonElement).disabled).toBe(true);
  });
});
