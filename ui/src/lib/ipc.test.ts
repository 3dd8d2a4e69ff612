import { afterEach, describe, expect, it } from 'vitest';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { fetchNow, probeQueueServer, saveConfig, setSecret, testDelivery } from './ipc';
import { configFrom, queueServer } from './config';

afterEach(() => clearMocks());

describe('ipc', () => {
  it('sends command names and arguments as the Rust side expects', async () => {
    const calls: [string, unknown][] = [];
    mockIPC((cmd, args) => {
      calls.push([cmd, args]);
      return cmd === 'test_delivery' ? '/srv/mail is ready for mail' : null;
    });
    const config = configFrom({
      domains: ['office.example'],
      server: queueServer('mail.isp.example', 'etrn'),
      deliver: 'maildir:/srv/mail',
      listenPort: 25,
    });

    await fetchNow();
    await setSecret('office@mail.isp.example', 'pw');
    await saveConfig(config);
    const tested = await testDelivery('maildir:/srv/mail');

    expect(calls).toEqual([
      ['fetch_now', {}],
      ['set_secret', { name: 'office@mail.isp.example', password: 'pw' }],
      ['save_config', { config }],
      ['test_delivery', { target: 'maildir:/srv/mail' }],
    ]);
    expect(tested).toBe('/srv/mail is ready for mail');
  });

  it('turns a rejected command into an Error with the engine\'s sentence', async () => {
    mockIPC(() => {
      throw 'cannot connect to mail.isp.example:25: refused';
    });

    await expect(probeQueueServer('mail.isp.example', 25)).rejects.toThrow(
      'cannot connect to mail.isp.example:25: refused',
    );
  });
});
