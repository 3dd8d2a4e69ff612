import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { calls, shot, start } from './harness.mjs';

let h;
before(async () => { h = await start(); });
after(async () => { await h?.stop(); });

const row = (page, id) => page.locator(`tr[data-id="${id}"]`);

test('queue: lists the outgoing mail; Retry delivers one, Drop asks first and removes the other', async () => {
  const page = await h.page('queue');
  await row(page, '1733071200-a1').waitFor();
  assert.match(await row(page, '1733071200-a1').textContent(), /slow@example\.net \(queued\).*good@example\.net \(delivered\)/);
  assert.match(await row(page, '1733071200-a1').textContent(), /1 h 30 min.*450 4\.2\.0 try later/);
  assert.match(await row(page, '1733074800-b2').textContent(), /when the link is up/);
  await shot(page, 'queue');

  await row(page, '1733074800-b2').getByRole('button', { name: 'Retry' }).click();
  await row(page, '1733074800-b2').waitFor({ state: 'detached' });
  assert.equal(await page.getByTestId('queue-notice').textContent(), '1733074800-b2 will be attempted now');

  const drop = row(page, '1733071200-a1').getByRole('button', { name: /drop/i });
  await drop.click();
  assert.match(await drop.textContent(), /Really drop\? \(no bounce is sent\)/);
  await drop.click();
  await page.getByText('No outgoing mail is waiting.').waitFor();

  const actions = (await calls(page)).filter(([c]) => c === 'queue_action').map(([, a]) => a.action);
  assert.deepEqual(actions, [{ action: 'retry', id: '1733074800-b2' }, { action: 'drop', id: '1733071200-a1' }]);
});
