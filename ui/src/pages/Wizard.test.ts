import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, fireEvent, render, screen } from '@testing-library/svelte';
import { tick } from 'svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import Wizard from './Wizard.svelte';

// The mocks stay installed after a test: unmounting unlistens asynchronously and needs them.
// Each test installs fresh ones.
afterEach(() => cleanup());

type Call = [string, Record<string, unknown>];

const REACHABLE = {
  verdict: 'reachable',
  findings: [{ id: 'etrn.reachable', severity: 'ok', subject: '198.51.100.7 (mail.office.example)', evidence: 'The office\'s MX address 198.51.100.7 is this machine\'s, and the inbound listener accepts connections there on port 25.' }],
};
const UNREACHABLE = {
  verdict: 'unreachable',
  findings: [
    { id: 'etrn.listener-not-on-address', severity: 'error', subject: '198.51.100.7 (mail.office.example)', evidence: '198.51.100.7 is this machine\'s, but the inbound listener only listens on 127.0.0.1:25.', fix: 'Add "198.51.100.7:25" (or "0.0.0.0:25") to [inbound] listen.' },
    { id: 'etrn.cannot-deliver', severity: 'error', subject: 'office.example', evidence: 'ETRN only asks the queuing server to deliver to the office\'s MX address; as set up, that delivery cannot reach this machine.', fix: 'Use ATRN.' },
  ],
};

function backend(calls: Call[], atrn = false, autostartFails = false) {
  clearMocks();
  mockIPC((cmd, args) => {
    calls.push([cmd, args as Record<string, unknown>]);
    switch (cmd) {
      case 'check_reachability':
        return (args as { listenAddress: string }).listenAddress === '127.0.0.1' ? UNREACHABLE : REACHABLE;
      case 'check_mx':
        return {
          domain: 'office.example',
          complete: true,
          office_host: 'mail.office.example',
          mx: [
            { preference: 10, host: 'mail.office.example.', addresses: ['198.51.100.7'] },
            { preference: 20, host: 'backup.isp.example.', addresses: ['203.0.113.9'] },
          ],
          recommended_protocol: 'etrn',
          findings: [
            { id: 'queue.etrn-refused', severity: 'warning', subject: 'backup.isp.example', evidence: 'The backup MX does not accept ETRN from you yet.', fix: 'Ask your ISP.' },
            { id: 'pref.unknown-mx', severity: 'warning', subject: 'backup.isp.example', evidence: 'backup.isp.example (preference 20) is neither the office\'s server nor a configured queuing server.' },
            { id: 'pref.unknown-mx', severity: 'warning', subject: 'stray.example', evidence: 'stray.example (preference 30) is neither the office\'s server nor a configured queuing server.' },
          ],
        };
      case 'probe_smarthost':
        return [
          { id: 'smarthost.answers', severity: 'ok', subject: 'smtps://smtp.isp.example:465', evidence: 'The smarthost answered: "smtp.isp.example ESMTP"' },
          { id: 'smarthost.tls-ok', severity: 'ok', subject: 'smtps://smtp.isp.example:465', evidence: 'TLS from the first byte works and the certificate is valid for smtp.isp.example.' },
          { id: 'smarthost.auth-ok', severity: 'ok', subject: 'smtps://smtp.isp.example:465', evidence: 'The smarthost offers PLAIN LOGIN; Postern logs in as office with PLAIN.' },
        ];
      case 'probe_queue_server':
        return {
          server: 'backup.isp.example:25',
          greeting: 'backup.isp.example ESMTP',
          etrn: true,
          atrn,
          starttls: true,
          auth: [],
          recommended: 'etrn',
          advice: 'ETRN: the server delivers to this computer',
        };
      case 'test_delivery':
        return '/srv/mail/Maildir is ready for mail';
      case 'starts_at_login':
        return false;
      case 'set_start_at_login':
        if (autostartFails) throw new Error('no autostart folder');
        return null;
      case 'save_config':
        return { icon: 'online', status_line: 'Online · no fetch yet · 0 messages', paused: false, fetching: false, messages_received: 0, last_fetch: null, problems: [] };
      default:
        return null;
    }
  }, { shouldMockEvents: true });
}

const next = () => fireEvent.click(screen.getByRole('button', { name: 'Next' }));
const commandNames = (calls: Call[]) =>
  calls.map(([c]) => c).filter((c) => !c.startsWith('plugin:event') && c !== 'check_reachability');

/** From an empty wizard to the "Listening port" step: ETRN, probed, no login, a Maildir. */
async function toListeningStep() {
  render(Wizard);
  await fireEvent.input(screen.getByLabelText('Domain 1'), { target: { value: 'office.example' } });
  await next();
  await tick();
  await screen.findByText('backup.isp.example.');
  await next();
  await fireEvent.click(screen.getByRole('button', { name: 'Check what the server supports' }));
  await screen.findByTestId('server-report');
  await next();
  await next();
  await fireEvent.input(screen.getByLabelText('Folder'), { target: { value: '/srv/mail/Maildir' } });
  await next();
}

describe('setup wizard', () => {
  it('sets up outgoing mail through a tested smarthost, its password in the keyring', async () => {
    const calls: Call[] = [];
    backend(calls);
    await toListeningStep();
    await next();
    expect(screen.getByText(/Step 7 of 8: Sending mail/)).toBeTruthy();

    await fireEvent.click(screen.getByLabelText(/Also send the office's outgoing mail/));
    await next();
    expect(screen.getByRole('alert').textContent).toMatch(/Enter/);
    await fireEvent.input(screen.getByLabelText(/outgoing mail server \(smarthost\)/), { target: { value: 'smtp.isp.example' } });
    await fireEvent.change(screen.getByLabelText('Encryption'), { target: { value: 'smtps' } });
    expect((screen.getByLabelText('Port') as HTMLInputElement).value).toBe('465');
    await fireEvent.input(screen.getByLabelText(/User name \(empty/), { target: { value: 'office' } });
    await next();
    expect(screen.getByRole('alert').textContent).toMatch(/password for the outgoing mail server/);
    await fireEvent.input(screen.getByLabelText('Password'), { target: { value: 'out-pw' } });
    await fireEvent.click(screen.getByRole('button', { name: 'Test the server' }));
    expect((await screen.findByTestId('smarthost-report')).textContent).toMatch(/logs in as office with PLAIN/);
    await next();
    expect(screen.getByTestId('summary').textContent).toMatch(/through smtps:\/\/smtp\.isp\.example:465/);
    await fireEvent.click(screen.getByRole('button', { name: 'Save and start' }));
    await screen.findByRole('button', { name: 'Fetch now' });

    const probe = calls.find(([c]) => c === 'probe_smarthost')![1] as { outbound: { smarthost: string } };
    expect(probe.outbound.smarthost).toBe('smtps://smtp.isp.example:465');
    expect(JSON.stringify(probe)).not.toContain('out-pw');
    expect(calls.filter(([c]) => c === 'set_secret').map(([, a]) => a)).toEqual([{ name: 'office@smtp.isp.example', password: 'out-pw' }]);
    const saved = calls.find(([c]) => c === 'save_config')![1].config as { outbound: unknown };
    expect(saved.outbound).toEqual({ listen: ['0.0.0.0:587'], allow: ['192.168.1.0/24'], smarthost: 'smtps://smtp.isp.example:465', smarthost_tls: 'required', smarthost_username: 'office' });
    expect(JSON.stringify(saved)).not.toContain('out-pw');
  });

  it('has the office send on a port of its own, on the address Postern receives on', async () => {
    const calls: Call[] = [];
    backend(calls);
    await toListeningStep();
    await fireEvent.input(screen.getByLabelText(/receives the released mail on port/), { target: { value: '2525' } });
    await next();
    await fireEvent.click(screen.getByLabelText(/Also send the office's outgoing mail/));
    await fireEvent.input(screen.getByLabelText(/outgoing mail server \(smarthost\)/), { target: { value: 'smtp.isp.example' } });
    expect(screen.getByText(/587 is a privileged port/)).toBeTruthy();

    await fireEvent.input(screen.getByLabelText('Port they send to on this computer'), { target: { value: '2525' } });
    await next();
    expect(screen.getByRole('alert').textContent).toMatch(/Port 2525 already receives the incoming mail/);
    await fireEvent.input(screen.getByLabelText('Port they send to on this computer'), { target: { value: '2587' } });
    await next();
    expect(screen.getByTestId('summary').textContent).toMatch(/send to 0\.0\.0\.0:2587/);
    await fireEvent.click(screen.getByRole('button', { name: 'Save and start' }));
    await screen.findByRole('button', { name: 'Fetch now' });

    const saved = calls.find(([c]) => c === 'save_config')![1].config as { outbound: { listen: string[] }; inbound: { listen: string[] } };
    expect(saved.outbound.listen).toEqual(['0.0.0.0:2587']);
    expect(saved.inbound.listen).toEqual(['0.0.0.0:2525']);
  });

  it('does not go on with an invalid domain and says why', async () => {
    backend([]);
    render(Wizard);

    await fireEvent.input(screen.getByLabelText('Domain 1'), { target: { value: 'anna@office.example' } });
    await next();

    expect(screen.getByRole('alert').textContent).toMatch(/only the part after @/);
    expect(screen.getByText(/Step 1 of 8/)).toBeTruthy();
  });

  it('walks from the domain to a saved config and a fetch', async () => {
    const calls: Call[] = [];
    backend(calls);
    render(Wizard);

    await fireEvent.input(screen.getByLabelText('Domain 1'), { target: { value: 'office.example' } });
    await next();
    await tick();
    expect(await screen.findByText('backup.isp.example.')).toBeTruthy();
    expect(screen.getByText(/The backup MX does not accept ETRN/)).toBeTruthy();
    // The backup MX about to be proposed is no "unknown MX"; another one is.
    expect(screen.queryByText(/backup\.isp\.example \(preference 20\) is neither/)).toBeNull();
    expect(screen.getByText(/stray\.example \(preference 30\) is neither/)).toBeTruthy();
    await next();

    expect((screen.getByLabelText('Server name') as HTMLInputElement).value).toBe('backup.isp.example');
    await fireEvent.click(screen.getByRole('button', { name: 'Check what the server supports' }));
    expect(await screen.findByTestId('server-report')).toBeTruthy();
    await next();

    await next(); // no password
    await fireEvent.input(screen.getByLabelText('Folder'), { target: { value: 'Mail' } });
    await next();
    expect(screen.getByRole('alert').textContent).toMatch(/full path/);
    await fireEvent.input(screen.getByLabelText('Folder'), { target: { value: '/srv/mail/Maildir' } });
    await fireEvent.click(screen.getByRole('button', { name: 'Test' }));
    expect(await screen.findByText('/srv/mail/Maildir is ready for mail')).toBeTruthy();
    await next();

    await fireEvent.input(screen.getByLabelText(/receives the released mail on port/), { target: { value: '2525' } });
    expect(screen.getByText(/forward port 25 from the internet to port 2525/)).toBeTruthy();
    await next();
    await next(); // no outgoing mail

    expect(screen.getByTestId('summary').textContent).toMatch(/backup\.isp\.example:25 \(ETRN\)/);
    await fireEvent.click(screen.getByRole('button', { name: 'Save and start' }));
    await fireEvent.click(await screen.findByRole('button', { name: 'Fetch now' }));

    const names = commandNames(calls);
    expect(names).toEqual(['check_mx', 'probe_queue_server', 'test_delivery', 'save_config', 'set_start_at_login', 'fetch_now']);
    const saved = calls.find(([c]) => c === 'save_config')![1].config as Record<string, any>;
    expect(saved.domains).toEqual(['office.example']);
    expect(saved.queue_servers[0]).toMatchObject({ host: 'backup.isp.example', port: 25, protocol: 'etrn' });
    expect(saved.inbound).toMatchObject({ listen: ['0.0.0.0:2525'], deliver: 'maildir:/srv/mail/Maildir' });
  });

  it('keeps saying that start at login failed after a Fetch now', async () => {
    const calls: Call[] = [];
    backend(calls, false, true);
    await toListeningStep();
    await next();
    await next();

    await fireEvent.click(screen.getByRole('button', { name: 'Save and start' }));
    await screen.findByText(/start at login could not be changed/);
    await fireEvent.click(screen.getByRole('button', { name: 'Fetch now' }));
    await tick();

    expect(commandNames(calls).slice(-2)).toEqual(['set_start_at_login', 'fetch_now']);
    expect(screen.getByRole('alert').textContent).toMatch(/start at login could not be changed: no autostart folder/);
  });

  it('stores the password in the keyring before saving, never in the config', async () => {
    const calls: Call[] = [];
    backend(calls);
    render(Wizard);
    await fireEvent.input(screen.getByLabelText('Domain 1'), { target: { value: 'office.example' } });
    await next();
    await tick();
    await next();
    await next();

    await fireEvent.click(screen.getByLabelText(/user name and password/));
    await next();
    expect(screen.getByRole('alert').textContent).toMatch(/Enter the user name/);
    await fireEvent.input(screen.getByLabelText('User name'), { target: { value: 'office' } });
    await fireEvent.input(screen.getByLabelText('Password'), { target: { value: 's3cret' } });
    await next();
    await fireEvent.input(screen.getByLabelText('Folder'), { target: { value: '/srv/mail/Maildir' } });
    await next();
    await next();
    await next();
    await fireEvent.click(screen.getByRole('button', { name: 'Save and start' }));
    await screen.findByRole('button', { name: 'Fetch now' });

    const names = commandNames(calls);
    expect(names.slice(-3)).toEqual(['set_secret', 'save_config', 'set_start_at_login']);
    expect(calls.find(([c]) => c === 'set_secret')![1]).toEqual({ name: 'office@backup.isp.example', password: 's3cret' });
    expect(JSON.stringify(calls.find(([c]) => c === 'save_config')![1])).not.toContain('s3cret');
  });

  it('checks that the ISP can reach the address and port, and explains a bad address', async () => {
    const calls: Call[] = [];
    backend(calls);
    await toListeningStep();

    expect(await screen.findByText(/can deliver the released mail to this computer/)).toBeTruthy();
    expect(screen.getByText(/accepts connections there on port 25/)).toBeTruthy();
    expect(screen.queryByRole('button', { name: 'Use ATRN instead' })).toBeNull();
    await fireEvent.input(screen.getByLabelText(/receives the released mail on the address/), { target: { value: 'my computer' } });
    expect(screen.getByText(/"my computer" is not an IP address/)).toBeTruthy();
    await next();
    expect(screen.getByRole('alert').textContent).toMatch(/is not an IP address/);

    const checked = calls.filter(([c]) => c === 'check_reachability').map(([, a]) => a);
    expect(checked).toEqual([{ domains: ['office.example'], queueHost: 'backup.isp.example', listenAddress: '0.0.0.0', listenPort: 25 }]);
  });

  it('offers ATRN when ETRN cannot deliver here, and asks for the login ATRN needs', async () => {
    const calls: Call[] = [];
    backend(calls, true);
    await toListeningStep();

    await fireEvent.input(screen.getByLabelText(/receives the released mail on the address/), { target: { value: '127.0.0.1' } });
    expect(await screen.findByText(/cannot deliver the released mail to this computer/)).toBeTruthy();
    expect(screen.getByText(/only listens on 127.0.0.1:25/)).toBeTruthy();
    await fireEvent.click(screen.getByRole('button', { name: 'Use ATRN instead' }));

    expect(screen.getByText(/Step 4 of 8/)).toBeTruthy();
    expect(screen.getByText(/ATRN needs the user name and password/)).toBeTruthy();
    await fireEvent.input(screen.getByLabelText('User name'), { target: { value: 'office' } });
    await fireEvent.input(screen.getByLabelText('Password'), { target: { value: 's3cret' } });
    await next();
    await next();
    expect(screen.getByTestId('no-forwarding').textContent).toMatch(/no port forwarding is needed/);
    await next();
    await next();
    expect(screen.getByTestId('summary').textContent).toMatch(/backup\.isp\.example:366 \(ATRN\).*127\.0\.0\.1:25/);
  });
});
