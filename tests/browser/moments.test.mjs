// The moments a person meets outside the daily pages, in a real headless Chromium: the setup link
// of a new instance (a Steward of its own, started here from STEWARD_BIN without a bootstrap
// admin), and the refusals on the way — an unknown page, a spent reset or invitation link, a
// page for administrators only, a form that fails its CSRF check. Each is a page of the
// instance, in its layout, never a JSON document, and fits a phone's width.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BASE = process.env.STEWARD_URL ?? 'http://127.0.0.1:8080';
const BIN = process.env.STEWARD_BIN;
const PASSWORD = 'the first admin password';

let context;
let page;
let profile;
let fresh;
let freshDir;

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Starts a Steward on an empty database and answers its base URL and the setup link it prints. */
async function newInstance() {
  freshDir = mkdtempSync(join(tmpdir(), 'steward-setup-'));
  const port = await freePort();
  const env = {
    ...process.env,
    STEWARD_LISTEN: `127.0.0.1:${port}`,
    STEWARD_DATABASE_URL: `sqlite://${join(freshDir, 'steward.db')}`,
    STEWARD_SQLITE_DURABLE: 'false',
  };
  delete env.STEWARD_BOOTSTRAP_ADMIN_EMAIL;
  delete env.STEWARD_BOOTSTRAP_ADMIN_PASSWORD;
  fresh = spawn(BIN, ['serve'], {
    cwd: freshDir,
    env,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let out = '';
  const link = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no setup link printed: ${out}`)), 30000);
    fresh.stdout.on('data', (chunk) => {
      out += chunk;
      const found = out.match(/https?:\/\/\S+\/setup\/\S+/);
      if (found && out.includes('listening')) {
        clearTimeout(timer);
        resolve(found[0]);
      }
    });
  });
  return { base: `http://127.0.0.1:${port}`, link: link.replace(/^https?:\/\/[^/]+/, `http://127.0.0.1:${port}`) };
}

/** What every page of the instance has: its stylesheet, a heading, and no JSON for a body. */
async function isAPage(what) {
  const type = await page.evaluate(() => document.contentType);
  assert.equal(type, 'text/html', `${what}: a page, not a document of another type`);
  assert.ok(await page.locator('link[href="/static/steward.css"]').count(), `${what}: in the instance's layout`);
  assert.ok((await page.locator('h1').count()) > 0, `${what}: a heading says where the person is`);
  const text = await page.locator('body').innerText();
  assert.ok(!text.trim().startsWith('{'), `${what}: not a JSON document`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `${what}: no sideways scrolling on a phone (${overflow}px too wide)`);
  return text;
}

before(async () => {
  assert.ok(BIN, 'STEWARD_BIN names the steward binary (scripts/browser-test sets it)');
  profile = mkdtempSync(join(tmpdir(), 'steward-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    viewport: { width: 375, height: 812 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-sync', '--no-first-run'],
  });
  page = context.pages()[0] ?? (await context.newPage());
});

after(async () => {
  await context?.close();
  fresh?.kill('SIGTERM');
  if (profile) rmSync(profile, { recursive: true, force: true });
  if (freshDir) rmSync(freshDir, { recursive: true, force: true });
});

test('a new instance is set up through its setup link, on a phone', async () => {
  const { base, link } = await newInstance();
  await page.goto(link);
  const text = await isAPage('the setup page');
  assert.match(text, /Create the first system administrator/);
  await page.getByLabel('Email').fill('first@setup.example');
  await page.getByLabel('Name').fill('First Admin');
  await page.getByLabel('Password').fill(PASSWORD);
  await Promise.all([page.waitForURL(`${base}/login`), page.getByRole('button', { name: 'Create the administrator' }).click()]);
  assert.match(await isAPage('the sign-in page after setup'), /The administrator is created/);
  await page.getByLabel('Email').fill('first@setup.example');
  await page.getByLabel('Password').fill(PASSWORD);
  await Promise.all([page.waitForURL(`${base}/admin`), page.getByRole('button', { name: 'Sign in' }).click()]);
  await page.goto(link);
  assert.match(await isAPage('a spent setup link'), /does not work any more/);
});

test('refusals and spent links are pages that say what to do', async () => {
  await context.clearCookies();
  const cases = [
    ['/nothing/here', /no such page/i],
    ['/reset/stw_reset_spent', /expired or was already used/],
    ['/invite/stw_invite_spent', /expired or was already used/],
    ['/setup/stw_setup_unknown', /does not work any more/],
  ];
  for (const [path, says] of cases) {
    const answer = await page.goto(`${BASE}${path}`);
    assert.equal(answer.status(), 404, path);
    assert.match(await isAPage(path), says);
  }
  // A form posted without its token, as a forged one would be.
  await page.goto(`${BASE}/forgot`);
  await page.evaluate(() => document.querySelector('input[name="csrf"]').setAttribute('value', 'forged'));
  await page.getByLabel('Email').fill('someone@example.com');
  const [answer] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/forgot') && r.request().method() === 'POST'),
    page.getByRole('button', { name: 'Send the link' }).click(),
  ]);
  assert.equal(answer.status(), 403);
  await page.waitForLoadState('load');
  assert.match(await isAPage('a failed CSRF check'), /reload the page and try again/);
});
