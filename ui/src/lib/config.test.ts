import { describe, expect, it } from 'vitest';
import { configFrom, listenEntry, queueServer, secretName } from './config';

describe('config from the wizard', () => {
  it('fills every field the engine needs', () => {
    const server = queueServer(' mail.isp.example ', 'atrn', undefined, 'office');

    const config = configFrom({
      domains: ['Office.Example', ''],
      server,
      deliver: 'maildir:/srv/mail/Maildir',
      listenPort: 2525,
    });

    expect(config).toEqual({
      domains: ['office.example'],
      queue_servers: [
        {
          host: 'mail.isp.example',
          port: 366,
          protocol: 'atrn',
          tls: 'required',
          username: 'office',
          allow_plaintext_auth: false,
          allow_insecure_turn: false,
          timeout: '30s',
        },
      ],
      inbound: {
        listen: ['0.0.0.0:2525'],
        deliver: 'maildir:/srv/mail/Maildir',
        hostname: '',
        max_message_size: 52428800,
        max_connections: 50,
        idle_timeout: '5m',
      },
      link: { probe: 'auto', refetch_every: '15m', connect_back_timeout: '2m' },
      dns: { nameservers: [] },
      desktop: { notifications: true },
    });
    expect(secretName(server)).toBe('office@mail.isp.example');
    expect(configFrom({ domains: ['office.example'], server, deliver: 'maildir:/m', listenPort: 2525, listenAddress: '127.0.0.1' }).inbound.listen).toEqual(['127.0.0.1:2525']);
    expect(listenEntry('::1', 25)).toBe('[::1]:25');
    expect(listenEntry('[::]', 2525)).toBe('[::]:2525');
    expect(secretName(queueServer('x.example', 'etrn'))).toBeNull();
  });
});
