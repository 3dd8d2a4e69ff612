import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { calls, shot, start } from './harness.mjs';

let h;
before(async () => { h = await start(); });
after(async () => { await h?.stop(); });

const alert = (page) => page.getByRole('alert').textContent();

test('wizard: every validation error, then a complete setup and a live fetch', async () => {
  const page = await h.page('wizard');
  const next = () => page.getByRole('button', { name: 'Next' }).click();

  // 1: domains
  await next();
  assert.match(await alert(page), /Enter at least one mail domain/);
  for (const [value, error] of [
    ['anna@office.example', /only the part after @/],
    ['office', /needs a dot/],
    ['off ice.example', /no spaces/],
  ]) {
    await page.getByLabel('Domain 1').fill(value);
    await next();
    assert.match(await alert(page), error);
  }
  await page.getByLabel('Domain 1').fill('office.example');
  await page.getByRole('button', { name: 'Add another domain' }).click();
  await page.getByLabel('Domain 2').fill('Office.example');
  await next();
  assert.match(await alert(page), /listed twice/);
  await page.getByRole('button', { name: 'Remove' }).nth(1).click();
  await shot(page, 'wizard-1-domains');
  await next();

  // 2: MX report
  await page.getByText('backup.isp.example.').waitFor();
  assert.match(await page.textContent('main'), /probably backup\.isp\.example/);
  await shot(page, 'wizard-2-mx');
  await next();

  // 3: queue server
  const hostField = page.getByLabel('Server name');
  assert.equal(await hostField.inputValue(), 'backup.isp.example');
  await hostField.fill('');
  await next();
  assert.match(await alert(page), /Enter the server name/);
  await hostField.fill('smtp://backup.isp.example');
  await next();
  assert.match(await alert(page), /only the server name/);
  await hostField.fill('unreachable.example');
  await page.getByRole('button', { name: 'Check what the server supports' }).click();
  assert.match(await alert(page), /connection refused. Check the server name/);
  await hostField.fill('backup.isp.example');
  await page.getByLabel('Port').fill('0');
  await next();
  assert.match(await alert(page), /1 to 65535/);
  await page.getByLabel('How to ask for the mail').selectOption('etrn');
  await page.getByLabel('Port').fill('25');
  await page.getByRole('button', { name: 'Check what the server supports' }).click();
  await page.getByTestId('server-report').waitFor();
  await shot(page, 'wizard-3-server');
  await next();

  // 4: credentials
  await page.getByLabel(/user name and password/).check();
  await next();
  assert.match(await alert(page), /Enter the user name/);
  await page.getByLabel('User name', { exact: true }).fill('off ice');
  await next();
  assert.match(await alert(page), /no spaces/);
  await page.getByLabel('User name', { exact: true }).fill('office');
  await next();
  assert.match(await alert(page), /Enter the password/);
  await page.getByLabel('Password', { exact: true }).fill('s3cret');
  await shot(page, 'wizard-4-password');
  await next();

  // 5: delivery
  await next();
  assert.match(await alert(page), /Choose the Maildir folder/);
  await page.getByLabel('Folder', { exact: true }).fill('Maildir');
  await next();
  assert.match(await alert(page), /full path/);
  await page.getByLabel('To the office mail server').check();
  await page.getByLabel('Office mail server (address:port)').fill('192.168.1.10:99999');
  await next();
  assert.match(await alert(page), /1 to 65535/);
  await page.getByLabel('Into a Maildir folder on this computer').check();
  await page.getByRole('button', { name: 'Choose folder…' }).click();
  assert.equal(await page.getByLabel('Folder', { exact: true }).inputValue(), '/home/office/Maildir');
  await page.getByRole('button', { name: 'Test' }).click();
  await page.getByText('/home/office/Maildir is ready for mail').waitFor();
  await shot(page, 'wizard-5-delivery');
  await next();

  // 6: listening port
  await page.getByLabel(/receives the released mail on port/).fill('http');
  await next();
  assert.match(await alert(page), /1 to 65535/);
  await page.getByLabel(/receives the released mail on port/).fill('25');
  assert.match(await page.textContent('main'), /router must forward port 25/);
  await shot(page, 'wizard-6-port');
  await next();

  // 7: summary, save, fetch now
  assert.match(await page.getByTestId('summary').textContent(), /backup\.isp\.example:25 \(ETRN\)/);
  await shot(page, 'wizard-7-summary');
  await page.getByRole('button', { name: 'Save and start' }).click();
  await page.getByRole('button', { name: 'Fetch now' }).click();
  await page.getByText(/Received a message from anna@customer\.example/).waitFor();
  assert.match(await page.getByTestId('live').textContent(), /250 Queuing started/);
  await shot(page, 'wizard-8-fetched');

  const names = (await calls(page)).map(([c]) => c);
  assert.deepEqual(names, ['check_mx', 'probe_queue_server', 'probe_queue_server', 'plugin:dialog|open',
    'test_delivery', 'set_secret', 'save_config', 'plugin:autostart|enable', 'fetch_now']);
  const saved = (await calls(page)).find(([c]) => c === 'save_config')[1].config;
  assert.deepEqual(saved.domains, ['office.example']);
  assert.equal(saved.queue_servers[0].username, 'office');
  assert.ok(!JSON.stringify(saved).includes('s3cret'));
});

test('wizard: Cancel closes the window and writes nothing', async () => {
  const page = await h.page('wizard');
  await page.getByLabel('Domain 1').fill('office.example');

  await page.getByRole('button', { name: 'Cancel' }).click();
  await page.waitForFunction(() => window.__closed === true);

  const names = (await calls(page)).map(([c]) => c);
  assert.deepEqual(names, ['plugin:window|close']);
});
