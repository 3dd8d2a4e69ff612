import { describe, expect, it } from 'vitest';
import * as v from './validate';

describe('validate', () => {
  it('accepts good domains and explains bad ones', () => {
    expect(v.domain('office.example')).toBeNull();
    expect(v.domain('Office.Example.')).toBeNull();
    expect(v.domain('')).toMatch(/Enter your mail domain/);
    expect(v.domain('anna@office.example')).toMatch(/only the part after @/);
    expect(v.domain('office')).toMatch(/needs a dot/);
    expect(v.domain('off ice.example')).toMatch(/no spaces/);
    expect(v.domain('-bad.example')).toMatch(/not a valid domain/);
  });

  it('needs at least one domain and no duplicates', () => {
    expect(v.domains(['', ' '])).toMatch(/at least one/);
    expect(v.domains(['a.example', 'A.example'])).toMatch(/twice/);
    expect(v.domains(['a.example', 'b.example'])).toBeNull();
  });

  it('checks hosts and ports', () => {
    expect(v.host('mail.isp.example')).toBeNull();
    expect(v.host('192.0.2.7')).toBeNull();
    expect(v.host('192.0.2.300')).toMatch(/not a valid IP/);
    expect(v.host('smtp://mail.isp.example')).toMatch(/only the server name/);
    expect(v.host('')).toMatch(/Enter the server name/);
    expect(v.port('25')).toBeNull();
    expect(v.port(0)).toMatch(/1 to 65535/);
    expect(v.port('70000')).toMatch(/1 to 65535/);
    expect(v.port('abc')).toMatch(/1 to 65535/);
  });

  it('checks listen addresses, durations and networks', () => {
    expect(v.socketAddress('0.0.0.0:25')).toBeNull();
    expect(v.socketAddress('[::]:2525')).toBeNull();
    expect(v.socketAddress('localhost:25')).toMatch(/not an address and port/);
    expect(v.duration('15m')).toBeNull();
    expect(v.duration('1h 30m')).toBeNull();
    expect(v.duration('0')).toBeNull();
    expect(v.duration('soon')).toMatch(/not a duration/);
    expect(v.network('192.168.1.0/24')).toBeNull();
    expect(v.network('192.168.1.0/33')).toMatch(/\/0 to \/32/);
    expect(v.network('lan')).toMatch(/not a network/);
  });

  it('checks the listening address', () => {
    expect(v.listenAddress('0.0.0.0')).toBeNull();
    expect(v.listenAddress(' 127.0.0.1 ')).toBeNull();
    expect(v.listenAddress('192.168.1.20')).toBeNull();
    expect(v.listenAddress('::')).toBeNull();
    expect(v.listenAddress('[2001:db8::1]')).toBeNull();
    expect(v.listenAddress('')).toMatch(/Enter the address to listen on/);
    expect(v.listenAddress('192.168.1.300')).toMatch(/each of the four numbers is 0 to 255/);
    expect(v.listenAddress('localhost')).toMatch(/"localhost" is not an IP address. Write 0.0.0.0/);
    expect(v.listenAddress('0.0.0.0:25')).toMatch(/is not an IP address/);
  });

  it('checks delivery targets', () => {
    expect(v.deliverTarget('maildir:/srv/mail/Maildir')).toBeNull();
    expect(v.deliverTarget('maildir:')).toMatch(/Choose the Maildir folder/);
    expect(v.deliverTarget('maildir:Mail')).toMatch(/full path/);
    expect(v.deliverTarget('smtp://192.168.1.10:25')).toBeNull();
    expect(v.deliverTarget('smtp://192.168.1.10:0')).toMatch(/1 to 65535/);
    expect(v.deliverTarget('/srv/mail')).toMatch(/Choose a Maildir folder or the office mail server/);
  });

  it('explains port 25 and unprivileged ports', () => {
    expect(v.listenPortAdvice(25)).toMatch(/router must forward port 25/);
    expect(v.listenPortAdvice(587)).toMatch(/privileged port/);
    expect(v.listenPortAdvice(2525)).toMatch(/forward port 25 from the internet to port 2525/);
  });
});
