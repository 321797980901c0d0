// Headless Chromium for the tests of web pages: Debian's `chromium` package (installed by
// `./dev test`), driven by playwright-core from npm. Playwright's own browser download is not
// used: it needs network access the test machines do not have.
//
// Each browser gets a fresh profile directory and the flags that keep Chromium from reaching
// for the network on its own (updates, sync, background requests), which a closed machine
// refuses. A test closes what it launches (`after(() => browser.close())`).

import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

/** The browser binary: `$CHROMIUM_BIN`, or Debian's. */
export const CHROMIUM_BIN = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

/** How long a launch may take. */
const LAUNCH_TIMEOUT_MS = 30_000;

/**
 * Launches headless Chromium with a throwaway profile.
 * @returns {Promise<{browser: import('playwright-core').BrowserContext, close: () => Promise<void>}>}
 */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM_BIN)) {
    throw new Error(`${CHROMIUM_BIN} is missing: install Debian's chromium package (./dev test does)`);
  }
  const profile = await mkdtemp(path.join(os.tmpdir(), 'switchboard-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_BIN,
    headless: true,
    args: FLAGS,
    timeout: LAUNCH_TIMEOUT_MS,
  });
  return {
    browser: context,
    close: async () => {
      await context.close().catch(() => {});
      await rm(profile, { recursive: true, force: true });
    },
  };
}
