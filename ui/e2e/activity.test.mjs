import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { artifacts, calls, start } from './harness.mjs';

let h;
before(async () => { h = await start(); });
after(async () => { await h?.stop(); });

// The window's first screenful (the whole page is hundreds of rows long).
const shot = (page, name) => page.screenshot({ path: path.join(artifacts, `${name}.png`) });
const rows = (page) => page.getByTestId('activity').locator('tbody tr');

test('activity: the journal newest first, with time and an icon per kind, paged', async () => {
  const page = await h.page('activity', { width: 1000 });
  await page.getByText('settings applied: refetch_every 15m').waitFor();

  assert.equal(await rows(page).count(), 100);
  const first = rows(page).first();
  assert.match(await first.locator('td.time').textContent(), /^(\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d$/);
  assert.deepEqual(await page.locator('svg[data-kind]').evaluateAll((s) => [...new Set(s.map((e) => e.dataset.kind))].sort()),
    ['backup', 'config', 'fetch', 'link', 'message', 'problem']);
  await shot(page, 'activity');

  await page.getByRole('button', { name: 'Show older' }).click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=activity] tbody tr').length === 200);
  const older = (await calls(page)).filter(([c]) => c === 'read_journal').at(-1)[1].query;
  assert.equal(typeof older.before_id, 'number');
  for (const n of [300, 365]) {
    await page.getByRole('button', { name: 'Show older' }).click();
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid=activity] tbody tr').length === n, n);
  }
  assert.equal(await page.getByRole('button', { name: 'Show older' }).count(), 0, 'the whole journal is shown');
});

test('activity: the kind filter and the search go to the engine', async () => {
  const page = await h.page('activity', { width: 1000 });
  await page.getByText('settings applied: refetch_every 15m').waitFor();

  await page.getByLabel('Show').selectOption('problem');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=activity] tbody tr').length === 1);
  assert.match(await rows(page).first().textContent(), /459 office\.example: service unavailable/);
  assert.deepEqual((await calls(page)).filter(([c]) => c === 'read_journal').at(-1)[1].query, { kind: 'problem', limit: 100 });

  await page.getByLabel('Show').selectOption('all');
  await page.getByLabel('Search').fill('sender-7@');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=activity] tbody tr').length === 1);
  assert.match(await rows(page).first().textContent(), /sender-7@customer\.example/);
  assert.equal((await calls(page)).filter(([c]) => c === 'read_journal').at(-1)[1].query.grep, 'sender-7@');

  await page.getByLabel('Search').fill('nothing like this');
  await page.getByText('Nothing matches.').waitFor();
});

test('activity: the neighbour fetching its held mail shows as backup rows with their own icon', async () => {
  const page = await h.page('activity', { width: 1000 });
  await page.getByText('settings applied: refetch_every 15m').waitFor();

  await page.getByLabel('Show').selectOption('backup');

  await page.waitForFunction(() => document.querySelectorAll('[data-testid=activity] tbody tr').length === 3);
  const texts = await rows(page).allTextContents();
  assert.match(texts[2], /neighbour\.example asked for its mail \(ATRN by neighbour\): 3 held/);
  assert.match(texts[0], /3 delivered, 0 still held/);
  assert.equal(await rows(page).first().locator('svg').getAttribute('aria-label'), 'Backup MX');
  assert.deepEqual((await calls(page)).filter(([c]) => c === 'read_journal').at(-1)[1].query, { kind: 'backup', limit: 100 });
});

test('activity: new rows appear live', async () => {
  const page = await h.page('activity', { width: 1000 });
  await page.getByText('settings applied: refetch_every 15m').waitFor();

  await page.getByRole('button', { name: 'Fetch mail now' }).click();

  await page.getByText(/anna@customer\.example/).waitFor();
  assert.match(await rows(page).first().textContent(), /anna@customer\.example/);
  assert.equal(await rows(page).count(), 101);
});

test('activity: dark theme', async () => {
  const page = await h.page('activity', { width: 1000, dark: true });
  await page.getByText('settings applied: refetch_every 15m').waitFor();
  assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(30, 31, 34)');
  await shot(page, 'activity-dark');
});
