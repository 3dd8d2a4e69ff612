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

  // 6: listening address and port, checked against the MX records
  const address = page.getByLabel(/receives the released mail on the address/);
  assert.equal(await address.inputValue(), '0.0.0.0');
  assert.match(await page.textContent('main'), /Every network of this computer/);
  for (const [value, error] of [
    ['', /Enter the address to listen on/],
    ['localhost', /"localhost" is not an IP address. Write 0.0.0.0/],
    ['192.168.1.300', /each of the four numbers is 0 to 255/],
  ]) {
    await address.fill(value);
    await next();
    assert.match(await alert(page), error, value);
  }
  await address.fill('0.0.0.0');
  await page.getByLabel(/receives the released mail on port/).fill('http');
  await next();
  assert.match(await alert(page), /1 to 65535/);
  await page.getByLabel(/receives the released mail on port/).fill('2525');
  await page.getByText(/only if your router forwards the port/).waitFor();
  assert.match(await page.getByTestId('reachability').textContent(), /Fix: Forward TCP port 25 to port 2525/);
  await page.getByLabel(/receives the released mail on port/).fill('25');
  await page.getByText(/can deliver the released mail to this computer/).waitFor();
  const reach = await page.getByTestId('reachability').textContent();
  assert.match(reach, /198\.51\.100\.7 \(mail\.office\.example\).*accepts connections there on port 25/s);
  assert.equal(await page.getByRole('button', { name: 'Use ATRN instead' }).count(), 0);
  assert.match(await page.textContent('main'), /router must forward port 25/);
  await shot(page, 'wizard-6-port');
  await next();

  // 7: outgoing mail through the ISP's smarthost, tested live
  await page.getByLabel(/Also send the office's outgoing mail/).check();
  await page.getByLabel(/outgoing mail server \(smarthost\)/).fill('smtp.isp.example');
  await page.getByLabel(/User name \(empty/).fill('office');
  await page.getByLabel('Password', { exact: true }).fill('out-pw');
  await page.getByRole('button', { name: 'Test the server' }).click();
  assert.match(await page.getByTestId('smarthost-report').textContent(), /STARTTLS works.*logs in as office with PLAIN/s);
  await shot(page, 'wizard-7-sending');
  await next();

  // 7: summary, save, fetch now
  assert.match(await page.getByTestId('summary').textContent(), /backup\.isp\.example:25 \(ETRN\)/);
  await shot(page, 'wizard-7-summary');
  await page.getByRole('button', { name: 'Save and start' }).click();
  await page.getByRole('button', { name: 'Fetch now' }).click();
  await page.getByText(/Received a message from anna@customer\.example/).waitFor();
  assert.match(await page.getByTestId('live').textContent(), /250 Queuing started/);
  await shot(page, 'wizard-8-fetched');

  const all = await calls(page);
  const names = all.map(([c]) => c).filter((c) => c !== 'check_reachability');
  assert.deepEqual(names, ['check_mx', 'probe_queue_server', 'probe_queue_server', 'plugin:dialog|open',
    'test_delivery', 'probe_smarthost', 'set_secret', 'set_secret', 'save_config', 'set_start_at_login', 'fetch_now']);
  assert.deepEqual(all.filter(([c]) => c === 'set_secret')[1][1], { name: 'office@smtp.isp.example', password: 'out-pw' });
  assert.deepEqual(all.filter(([c]) => c === 'check_reachability').at(-1)[1],
    { domains: ['office.example'], queueHost: 'backup.isp.example', listenAddress: '0.0.0.0', listenPort: 25 });
  const saved = all.find(([c]) => c === 'save_config')[1].config;
  assert.deepEqual(saved.domains, ['office.example']);
  assert.deepEqual(saved.inbound.listen, ['0.0.0.0:25']);
  assert.equal(saved.queue_servers[0].username, 'office');
  assert.ok(!JSON.stringify(saved).includes('s3cret'));
  assert.equal(saved.outbound.smarthost, 'smtp://smtp.isp.example:587');
  assert.equal(saved.outbound.smarthost_username, 'office');
  assert.ok(!JSON.stringify(saved).includes('out-pw'));
});

test('wizard: ETRN cannot reach this computer, so it offers ATRN and needs no forwarding', async () => {
  const page = await h.page('wizard');
  const next = () => page.getByRole('button', { name: 'Next' }).click();
  await page.getByLabel('Domain 1').fill('office.example');
  await next();
  await page.getByText('backup.isp.example.').waitFor();
  await next();
  await page.getByLabel('Server name').fill('odmr.isp.example');
  await page.getByLabel('How to ask for the mail').selectOption('etrn');
  await page.getByRole('button', { name: 'Check what the server supports' }).click();
  await page.getByTestId('server-report').waitFor();
  await next();
  await next(); // no login yet
  await page.getByLabel('Folder', { exact: true }).fill('/home/office/Maildir');
  await next();

  await page.getByLabel(/receives the released mail on the address/).fill('127.0.0.1');
  await page.getByText(/cannot deliver the released mail to this computer/).waitFor();
  assert.match(await page.textContent('main'), /This computer only: nothing from outside can connect/);
  const reach = await page.getByTestId('reachability').textContent();
  assert.match(reach, /only listens on 127\.0\.0\.1:25/);
  assert.match(reach, /Fix: Use ATRN/);
  assert.match(reach, /odmr\.isp\.example:25 also offers ATRN/);
  await shot(page, 'wizard-6-unreachable');
  await page.getByRole('button', { name: 'Use ATRN instead' }).click();

  assert.match(await page.textContent('main'), /Step 4 of 8.*ATRN needs the user name and password/s);
  await page.getByLabel('User name', { exact: true }).fill('office');
  await page.getByLabel('Password', { exact: true }).fill('s3cret');
  await next();
  await next();
  assert.match(await page.getByTestId('no-forwarding').textContent(), /With ATRN .* no port forwarding is needed/);
  assert.equal(await page.getByTestId('reachability').count(), 0);
  await shot(page, 'wizard-6-atrn');
  await next();
  await next(); // no outgoing mail
  assert.match(await page.getByTestId('summary').textContent(), /odmr\.isp\.example:366 \(ATRN\)/);
  await page.getByRole('button', { name: 'Save and start' }).click();
  await page.getByRole('button', { name: 'Fetch now' }).waitFor();

  const saved = (await calls(page)).find(([c]) => c === 'save_config')[1].config;
  assert.deepEqual(saved.queue_servers[0], { host: 'odmr.isp.example', port: 366, protocol: 'atrn', tls: 'required', username: 'office',
    allow_plaintext_auth: false, allow_insecure_turn: false, timeout: '30s' });
  assert.deepEqual(saved.inbound.listen, ['127.0.0.1:25']);
});

test('wizard: Cancel closes the window and writes nothing', async () => {
  const page = await h.page('wizard');
  await page.getByLabel('Domain 1').fill('office.example');

  await page.getByRole('button', { name: 'Cancel' }).click();
  await page.waitForFunction(() => window.__closed === true);

  const names = (await calls(page)).map(([c]) => c);
  assert.deepEqual(names, ['plugin:window|close']);
});
