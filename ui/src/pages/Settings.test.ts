import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, fireEvent, render, screen } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import Settings from './Settings.svelte';
import { configFrom, queueServer } from '../lib/config';

afterEach(() => cleanup());

const config = () => ({
  ...configFrom({
    domains: ['office.example'],
    server: queueServer('mail.isp.example', 'etrn', 25, 'office'),
    deliver: 'maildir:/srv/mail/Maildir',
    listenPort: 25,
  }),
  inbound: {
    listen: ['0.0.0.0:25'],
    deliver: 'maildir:/srv/mail/Maildir',
    hostname: 'gate.office.example',
    max_message_size: 52428800,
    max_connections: 20,
    idle_timeout: '5m',
  },
});

const status = { icon: 'online', status_line: 'Online · last fetch 10:42 · 12 messages', paused: false, fetching: false, messages_received: 12, last_fetch: '10:42', problems: [] };

function backend(calls: [string, any][], saveError?: string, loaded: object = config()) {
  clearMocks();
  mockIPC((cmd, args) => {
    calls.push([cmd, args]);
    if (cmd === 'load_config') return { path: '/home/office/.config/org.postern.Postern/postern.toml', exists: true, config: structuredClone(loaded), error: null };
    if (cmd === 'get_status') return status;
    if (cmd === 'save_config') {
      if (saveError) throw saveError;
      return status;
    }
    return null;
  }, { shouldMockEvents: true });
}

const apply = () => screen.getByRole('button', { name: 'Apply' }) as HTMLButtonElement;

describe('settings', () => {
  it('shows the config and the status line', async () => {
    backend([]);
    render(Settings);

    expect(((await screen.findByLabelText('Domains (comma-separated)')) as HTMLInputElement).value).toBe('office.example');
    expect((await screen.findByTestId('status-line')).textContent).toBe('Online · last fetch 10:42 · 12 messages');
  });

  it('validates as you type and keeps Apply off while anything is wrong', async () => {
    backend([]);
    render(Settings);
    const domains = await screen.findByLabelText('Domains (comma-separated)');

    await fireEvent.input(domains, { target: { value: 'office' } });
    expect(screen.getByText(/needs a dot/)).toBeTruthy();
    expect(apply().disabled).toBe(true);
    await fireEvent.input(screen.getByLabelText('Fetch again every (0 = only when the link comes up)'), { target: { value: 'often' } });
    expect(screen.getByText(/"often" is not a duration/)).toBeTruthy();
    await fireEvent.input(screen.getByLabelText('Listen on (comma-separated address:port)'), { target: { value: '0.0.0.0:99999' } });
    expect(screen.getAllByText(/1 to 65535/).length).toBeGreaterThan(0);

    await fireEvent.input(domains, { target: { value: 'office.example, branch.example' } });
    await fireEvent.input(screen.getByLabelText('Fetch again every (0 = only when the link comes up)'), { target: { value: '30m' } });
    await fireEvent.input(screen.getByLabelText('Listen on (comma-separated address:port)'), { target: { value: '0.0.0.0:2525' } });
    expect(apply().disabled).toBe(false);
  });

  it('Apply saves the whole config and a new password goes to the keyring', async () => {
    const calls: [string, any][] = [];
    backend(calls);
    render(Settings);
    await fireEvent.input(await screen.findByLabelText('Domains (comma-separated)'), { target: { value: 'office.example, branch.example' } });
    await fireEvent.input(screen.getByLabelText(/New password/), { target: { value: 'n3w' } });

    await fireEvent.click(apply());

    expect(await screen.findByText(/Saved. The engine restarted/)).toBeTruthy();
    const secret = calls.find(([c]) => c === 'set_secret');
    expect(secret?.[1]).toEqual({ name: 'office@mail.isp.example', password: 'n3w' });
    const saved = calls.find(([c]) => c === 'save_config')![1].config;
    expect(saved).toEqual({ ...config(), domains: ['office.example', 'branch.example'] });
  });

  it('notifications are on by default and Apply saves them switched off', async () => {
    const calls: [string, any][] = [];
    backend(calls);
    render(Settings);
    const box = (await screen.findByLabelText('Show notifications')) as HTMLInputElement;
    expect(box.checked).toBe(true);

    await fireEvent.click(box);
    await fireEvent.click(apply());

    await screen.findByText(/Saved. The engine restarted/);
    const saved = calls.find(([c]) => c === 'save_config')![1].config;
    expect(saved.desktop).toEqual({ notifications: false });
  });

  it('a config from before [desktop] shows notifications on and saves the section', async () => {
    const calls: [string, any][] = [];
    const { desktop: _, ...old } = config();
    backend(calls, undefined, old);
    render(Settings);

    expect(((await screen.findByLabelText('Show notifications')) as HTMLInputElement).checked).toBe(true);
    await fireEvent.click(apply());

    await screen.findByText(/Saved. The engine restarted/);
    expect(calls.find(([c]) => c === 'save_config')![1].config.desktop).toEqual({ notifications: true });
  });

  it('shows the engine\'s reason when saving fails', async () => {
    backend([], 'postern.toml:7:11: "0.0.0.0:25" cannot be used. Fix: pick a free port');
    render(Settings);
    await screen.findByLabelText('Domains (comma-separated)');

    await fireEvent.click(apply());

    expect((await screen.findByRole('alert')).textContent).toMatch(/cannot be used. Fix: pick a free port/);
  });
});
