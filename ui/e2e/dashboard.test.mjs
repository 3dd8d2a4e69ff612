import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { calls, shot, start } from './harness.mjs';

let h;
before(async () => { h = await start(); });
after(async () => { await h?.stop(); });

const tile = async (page, id) => (await page.getByTestId(id).locator('strong').textContent()).trim();

test('dashboard: link, counts, servers, what needs attention', async () => {
  const page = await h.page('dashboard', { width: 1000 });
  await page.getByTestId('received-today').waitFor();

  assert.equal(await tile(page, 'link'), 'Online');
  assert.match(await page.getByTestId('link').textContent(), /since (\d{4}-\d\d-\d\d )?\d\d:\d\d/);
  assert.equal(await tile(page, 'received-today'), '9');
  assert.equal(await tile(page, 'received-week'), '41');
  assert.equal(await tile(page, 'outbound-queue'), '2');
  const servers = await page.getByTestId('servers').locator('tbody tr').allTextContents();
  assert.equal(servers.length, 2);
  assert.match(servers[0], /mail\.isp\.example:25.*250 office\.example: the server is sending the waiting mail/s);
  assert.match(servers[1], /451 office\.example: the server is busy.*\(retry 2\)/s);
  assert.match(await page.getByTestId('attention').textContent(), /backup\.isp\.example:366.*Fix: Nothing to do unless it lasts/s);
});

test('dashboard: the charts are drawn from the journal counts, offline', async () => {
  const page = await h.page('dashboard', { width: 1000 });
  await page.getByTestId('chart-days').locator('canvas').waitFor();

  for (const id of ['chart-days', 'chart-hours', 'chart-wait']) {
    assert.equal(await page.getByTestId(id).locator('canvas').count(), 1, id);
  }
  // 30 days of [3, 7, 0, 12, 5] received and [1, 2, 0, 4] sent; 48 h of 2 every third hour.
  assert.equal(await page.getByTestId('total-days').textContent(), '162 received, 52 sent in 30 days');
  assert.equal(await page.getByTestId('total-hours').textContent(), '32 received, 8 sent in 48 hours');
  assert.equal(await page.getByTestId('wait').textContent(),
    '6 dequeues in 30 days; typically 3 s from the request to the first message; 1 brought no mail.');
  const waitLegend = await page.getByTestId('chart-wait').locator('.u-legend').textContent();
  assert.match(waitLegend, /Seconds from the request to the first message.*Brought no mail/s);
  const legend = await page.getByTestId('chart-days').locator('.u-legend').textContent();
  assert.match(legend, /Received.*Sent/s);
  await shot(page, 'dashboard');
});

test('dashboard: the backup MX card shows, per neighbour, what is held and when it was fetched', async () => {
  const page = await h.page('dashboard', { width: 1000 });
  const card = page.getByTestId('backup');
  await card.waitFor();

  const neighbour = card.locator('[data-domain="neighbour.example"]');
  assert.equal(await neighbour.getByTestId('held').textContent(), '12 held');
  assert.match(await neighbour.getByTestId('held-size').textContent(), /^47 KB, oldest since (\d{4}-\d\d-\d\d )?\d\d:\d\d$/);
  assert.match(await neighbour.getByTestId('last-fetch').textContent(), /fetched (\d{4}-\d\d-\d\d )?\d\d:\d\d \(ATRN by neighbour\)/);
  assert.equal(await neighbour.getByTestId('held-attention').count(), 0);
  const slow = card.locator('[data-domain="slow.example"]');
  assert.match(await slow.getByTestId('last-fetch').textContent(), /never fetched/);
  assert.match(await slow.getByTestId('held-attention').textContent(), /Goes back to the senders from .* \(max_hold\)/);
  assert.match(await slow.getAttribute('class'), /attention/);
});

test('dashboard: without neighbours there is no backup MX card', async () => {
  const page = await h.page('dashboard', { init: () => { window.__noBackup = true; } });
  await page.getByTestId('received-today').waitFor();

  assert.equal(await page.getByTestId('backup').count(), 0);
});

test('dashboard: the charts draw in the POSIX locale (WebKitGTK says navigator.language "C")', async () => {
  const page = await h.page('dashboard', { init: () => Object.defineProperty(Navigator.prototype, 'language', { get: () => 'C' }) });

  await page.getByTestId('chart-days').locator('canvas').waitFor();

  assert.equal(await page.getByTestId('chart-wait').locator('canvas').count(), 1);
});

test('dashboard: readable in the dark theme', async () => {
  const page = await h.page('dashboard', { width: 1000, dark: true });
  await page.getByTestId('chart-days').locator('canvas').waitFor();

  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const axis = await page.getByTestId('chart-days').locator('.u-legend').evaluate((e) => getComputedStyle(e).color);

  assert.equal(bg, 'rgb(30, 31, 34)');
  assert.equal(axis, 'rgb(232, 232, 234)', 'the legend uses the light foreground');
  await shot(page, 'dashboard-dark');
});

test('dashboard: all well, and a status change reads it again', async () => {
  const page = await h.page('dashboard', { width: 1000 });
  await page.getByTestId('received-today').waitFor();
  const before = (await calls(page)).filter(([c]) => c === 'dashboard').length;

  await page.evaluate(() => {
    window.__dashboard = { ...window.__dashboard, attention: [], stats: { ...window.__dashboard.stats, received_today: 10 } };
    window.__emit('status', { icon: 'online', status_line: 'Online · last fetch 10:50 · 13 messages', paused: false, fetching: false, messages_received: 13, last_fetch: '10:50', problems: [] });
  });

  await page.getByText('Nothing needs your attention.').waitFor();
  assert.equal(await tile(page, 'received-today'), '10');
  assert.ok((await calls(page)).filter(([c]) => c === 'dashboard').length > before);
});

test('dashboard: Activity… opens the Activity window', async () => {
  const page = await h.page('dashboard');
  await page.getByTestId('received-today').waitFor();
  await page.getByRole('button', { name: 'Activity…' }).click();
  assert.deepEqual((await calls(page)).filter(([c]) => c === 'open_window').at(-1)[1], { window: 'activity' });
});
