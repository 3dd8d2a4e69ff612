import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { calls, shot, start } from './harness.mjs';

let h;
before(async () => { h = await start(); });
after(async () => { await h?.stop(); });

test('settings: validation errors as you type, Apply saves', async () => {
  const page = await h.page('settings');
  const apply = page.getByRole('button', { name: 'Apply' });
  await page.getByTestId('status-line').waitFor();
  await shot(page, 'settings');

  const cases = [
    ['Domains (comma-separated)', 'office', /needs a dot/, 'office.example'],
    ['Server name', 'mail isp', /only the server name/, 'mail.isp.example'],
    ['Port', '0', /1 to 65535/, '25'],
    ['Timeout', 'long', /not a duration/, '30s'],
    ['Listen on (comma-separated address:port)', 'localhost:25', /not an address and port/, '0.0.0.0:25'],
    ['Deliver to (maildir:/path or smtp://host:port)', 'maildir:Mail', /full path/, 'maildir:/srv/mail/Maildir'],
    ['Idle timeout', 'x', /not a duration/, '5m'],
    ['Fetch again every (0 = only when the link comes up)', 'often', /not a duration/, '15m'],
    ['Wait for the server to connect back', '?', /not a duration/, '2m'],
    ['DNS servers (empty = the system\'s)', '8.8.8.8', /not an address and port/, ''],
  ];
  for (const [label, bad, error, good] of cases) {
    const field = page.getByLabel(label, { exact: true });
    await field.fill(bad);
    assert.match(await page.textContent('form'), error, label);
    assert.equal(await apply.isDisabled(), true, label);
    await field.fill(good);
  }
  await page.getByLabel('Protocol').selectOption('turn');
  assert.match(await page.textContent('form'), /TURN lets anyone who can log in/);
  await page.getByLabel('Protocol').selectOption('etrn');
  await page.getByLabel('Relay the office\'s outgoing mail').check();
  await page.getByLabel('Allowed networks').fill('lan');
  assert.match(await page.textContent('form'), /not a network/);
  await page.getByLabel('Allowed networks').fill('192.168.1.0/24');
  await page.getByLabel('Smarthost', { exact: true }).fill('smtp.isp.example');
  assert.match(await page.textContent('form'), /smtp:\/\/host:587/);
  await page.getByLabel('Smarthost', { exact: true }).fill('smtp://smtp.isp.example:587');
  await shot(page, 'settings-outbound');

  await page.getByLabel('Start Postern when I log in').check();
  assert.equal(await page.evaluate(() => window.__atLogin), true);
  const notifications = page.getByLabel('Show notifications');
  assert.equal(await notifications.isChecked(), true);
  await notifications.uncheck();

  assert.equal(await apply.isDisabled(), false);
  await apply.click();
  await page.getByText('Saved. The engine restarted with the new settings.').waitFor();
  const saved = (await calls(page)).find(([c]) => c === 'save_config')[1].config;
  assert.deepEqual(saved.desktop, { notifications: false });
  assert.deepEqual(saved.outbound, { listen: ['0.0.0.0:587'], allow: ['192.168.1.0/24'], smarthost: 'smtp://smtp.isp.example:587', smarthost_tls: 'required' });
});

test('settings: dark theme follows the OS', async () => {
  const page = await h.page('settings', { dark: true });
  await page.getByTestId('status-line').waitFor();

  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);

  assert.equal(bg, 'rgb(30, 31, 34)');
  await shot(page, 'settings-dark');
});

test('settings: keyboard only reaches Apply', async () => {
  const page = await h.page('settings');
  await page.getByTestId('status-line').waitFor();

  let focused = '';
  for (let i = 0; i < 80 && focused !== 'Apply'; i++) {
    await page.keyboard.press('Tab');
    focused = await page.evaluate(() => document.activeElement?.textContent ?? '');
  }

  assert.equal(focused, 'Apply');
});

test('MX report groups findings by severity with their fixes', async () => {
  const page = await h.page('mx');
  await page.getByText('backup.isp.example.').waitFor();

  const text = await page.textContent('main');

  assert.match(text, /Problems.*Does not answer on port 25.*Fix: Forward port 25/s);
  assert.match(text, /Warnings.*Keeps mail for 5 days/s);
  assert.match(text, /Recommended way to fetch: ETRN/);
  await shot(page, 'mx-report');
});

