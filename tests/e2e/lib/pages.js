// Helpers for the tests of the node's web pages (the demo chat, the dashboard) in headless
// Chromium: screenshots as test artifacts, and the security headers every page must carry.

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT } from './server.js';

/** Where screenshots go (git-ignored): `$E2E_ARTIFACTS`, or tests/e2e/artifacts. */
export const ARTIFACTS_DIR = process.env.E2E_ARTIFACTS ?? path.join(REPO_ROOT, 'tests', 'e2e', 'artifacts');

/** How long a page may take to show what a test waits for. */
export const PAGE_TIMEOUT_MS = 10_000;

/** Saves a full-page screenshot of `page` as `ARTIFACTS_DIR/NAME.png`; resolves with its path. */
export async function screenshot(page, name) {
  await mkdir(ARTIFACTS_DIR, { recursive: true });
  const file = path.join(ARTIFACTS_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true, timeout: PAGE_TIMEOUT_MS });
  return file;
}

/** Opens `url` in a new tab of `browser`, recording console errors and failed requests. */
export async function openPage(browser, url) {
  const page = await browser.newPage();
  page.setDefaultTimeout(PAGE_TIMEOUT_MS);
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  const response = await page.goto(url, { waitUntil: 'load', timeout: PAGE_TIMEOUT_MS });
  return { page, response, problems };
}

/** Asserts the headers every page and asset of the node carries (strict CSP, no sniffing). */
export function assertSecurityHeaders(headers, what) {
  const get = (name) => (typeof headers.get === 'function' ? headers.get(name) : headers[name]);
  const csp = get('content-security-policy') ?? '';
  assert.match(csp, /default-src 'none'/, `${what}: CSP ${csp}`);
  assert.match(csp, /script-src 'self'(;|$)/, `${what}: scripts from this origin only: ${csp}`);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/, `${what}: ${csp}`);
  assert.equal(get('x-content-type-options'), 'nosniff', what);
}
