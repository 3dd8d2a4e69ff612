// Starts `vite dev` on a free port and Debian's Chromium through playwright-core, with the
// mock backend injected; screenshots go to tests/artifacts/desktop/.
import { createServer } from 'vite';
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
export const artifacts = path.resolve(here, '../../tests/artifacts/desktop');

export async function start() {
  mkdirSync(artifacts, { recursive: true });
  const server = await createServer({
    root: path.resolve(here, '..'),
    configFile: path.resolve(here, '../vite.config.ts'),
    server: { port: 0, strictPort: false, host: '127.0.0.1' },
    logLevel: 'error',
  });
  await server.listen();
  const address = server.httpServer.address();
  const base = `http://127.0.0.1:${address.port}/`;
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return {
    base,
    browser,
    async page(hash, { noConfig = false, dark = false, width = 760, init = null } = {}) {
      const context = await browser.newContext({ viewport: { width, height: 900 }, colorScheme: dark ? 'dark' : 'light' });
      if (noConfig) await context.addInitScript(() => { window.__noConfig = true; });
      if (init) await context.addInitScript(init);
      await context.addInitScript({ path: path.join(here, 'mock-backend.js') });
      const page = await context.newPage();
      await page.goto(`${base}#/${hash}`);
      return page;
    },
    async stop() {
      await browser.close();
      await server.close();
    },
  };
}

export const shot = (page, name) => page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
export const calls = (page) => page.evaluate(() => window.__calls.filter(([c]) => !c.startsWith('plugin:event')));
