// The moments a person meets outside the daily pages, in a real headless Chromium: the setup link
// of a new instance (a Steward of its own, started here from STEWARD_BIN without a bootstrap
// admin), and the refusals on the way — an unknown page, a spent reset or invitation link, a
// page for administrators only, a form that fails its CSRF check, a failure on the server (a
// stored row made unreadable behind Steward's back, with python3's sqlite3). Each is a page of the
// instance, in its layout, never a JSON document, and fits a phone's width.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
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
let freshBase;

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
  freshBase = base;
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

/** Calls the JSON API of the fresh instance as its first administrator. */
async function asFirstAdmin(method, path, body) {
  const login = await fetch(`${freshBase}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'first@setup.example', password: PASSWORD }),
  });
  const { token } = await login.json();
  const answer = await fetch(`${freshBase}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.ok(answer.ok, `${method} ${path}: ${answer.status}`);
  return answer.json();
}

/** Signs `email` in to the fresh instance in the browser, afresh, and waits for `landing`. */
async function signIn(email, landing) {
  await context.clearCookies();
  await page.goto(`${freshBase}/login`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await Promise.all([page.waitForURL(`${freshBase}${landing}`), page.getByRole('button', { name: 'Sign in' }).click()]);
}

test('a page for administrators only and a failure on our side are pages too', async () => {
  assert.ok(freshBase, 'the setup test made the instance');
  const plain = await asFirstAdmin('POST', '/api/v1/users', {
    email: 'plain@setup.example', name: 'Plain Person', password: PASSWORD,
  });
  const org = await asFirstAdmin('POST', '/api/v1/orgs', { name: 'Broken Co', owner_id: plain.id });

  // A stored row Steward cannot read: its page fails on the server, and says so without the cause.
  const db = join(freshDir, 'steward.db');
  const breakIt = `import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("UPDATE orgs SET license = '{' WHERE id = ?", (sys.argv[2],)); c.commit()`;
  execFileSync('python3', ['-c', breakIt, db, org.id]);
  await signIn('first@setup.example', '/admin');
  const failed = await page.goto(`${freshBase}/admin/orgs/${org.id}`);
  assert.equal(failed.status(), 500);
  const text = await isAPage('a failure on the server');
  assert.match(text, /Something went wrong on our side/);
  assert.doesNotMatch(text, /license|corrupt|sqlite|column/i, 'a 5xx page tells nothing of the cause');

  // A signed-in person who is not an administrator is told so, in the instance's layout.
  await signIn('plain@setup.example', '/app');
  const refused = await page.goto(`${freshBase}/admin`);
  assert.equal(refused.status(), 403);
  const forbidden = await isAPage('a page for administrators only');
  assert.match(forbidden, /Administration is for instance administrators/);
  assert.match(forbidden, /Plain Person/, 'the person is still shown as signed in, with their navigation');
});
