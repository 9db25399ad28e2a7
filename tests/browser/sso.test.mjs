// Single sign-on in a real headless Chromium: a real OpenID Connect provider (tests/oidc, the
// certified node-oidc-provider) on a loopback port, a connection made through the API, and the
// whole flow through the pages — the email on Steward's sign-in page, the provider's login form,
// and back to Steward's dashboard with a session; then the same person, deactivated, refused.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

import { call } from './api.mjs';

const BASE = process.env.STEWARD_URL ?? 'http://127.0.0.1:8080';
const ADMIN_EMAIL = process.env.STEWARD_ADMIN_EMAIL ?? 'admin@example.com';
const ADMIN_PASSWORD = process.env.STEWARD_ADMIN_PASSWORD ?? 'change me, please';
const OIDC = join(dirname(fileURLToPath(import.meta.url)), '..', 'oidc', 'provider.mjs');

let provider;
let issuer;
let context;
let page;
let profile;
let token;

const api = (method, path, body) => call(BASE, token, method, path, body);

before(async () => {
  const login = await fetch(`${BASE}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD }),
  }).then((r) => r.json());
  token = login.token;
  provider = spawn(process.execPath, [OIDC], {
    env: {
      ...process.env,
      OIDC_REDIRECT_URI: `${BASE}/sso/callback`,
      OIDC_ACCOUNTS: JSON.stringify({ grace: { email: 'grace@sso.example', name: 'Grace Single', groups: [] } }),
    },
    // The provider stops when its standard input closes, so it keeps a pipe from us open.
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  issuer = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: provider.stdout });
    lines.on('line', (line) => { if (line.startsWith('ready ')) resolve(line.slice(6)); });
    provider.on('exit', (code) => reject(new Error(`the provider stopped (${code})`)));
  });
  const made = await api('POST', '/sso/connections', {
    name: 'Example IdP', issuer, client_id: 'steward', client_secret: 'steward-test-secret',
    scopes: ['openid', 'email', 'profile'], domains: ['sso.example'], jit: true,
  });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  profile = mkdtempSync(join(tmpdir(), 'steward-chromium-sso-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--disable-quic', '--no-first-run',
    ],
  });
  page = context.pages()[0] ?? (await context.newPage());
});

after(async () => {
  await context?.close();
  provider?.kill();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/** From Steward's sign-in page through the provider's login form, back to Steward. */
async function signInThroughTheProvider(login) {
  await page.context().clearCookies();
  await page.goto(`${BASE}/login`);
  assert.ok(await page.getByRole('link', { name: 'Sign in with Example IdP' }).isVisible());
  await page.getByLabel('Email').fill('grace@sso.example');
  await page.getByRole('button', { name: 'Continue with single sign-on' }).click();
  // Steward's start redirects to the provider, which shows its own login form.
  await page.locator('input[name="login"]').waitFor({ timeout: 15000 }).catch(async (e) => {
    throw new Error(`no login form at ${page.url()}: ${(await page.content()).slice(0, 600)} (${e.message})`);
  });
  assert.equal(new URL(page.url()).origin, new URL(issuer).origin);
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill('anything at all');
  await page.locator('button[type="submit"]').first().click();
  // Several redirects follow (provider, Steward's callback, the dashboard): wait for the last.
  for (let i = 0; i < 150; i++) {
    const url = new URL(page.url());
    if (url.origin === new URL(BASE).origin) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await page.waitForLoadState('load');
}

test('a new person signs in through the identity provider and lands on the dashboard', async () => {
  await signInThroughTheProvider('grace');
  assert.equal(new URL(page.url()).pathname, '/app');
  assert.match(await page.locator('body').innerText(), /Grace Single/);
  const users = await api('GET', '/users?q=grace%40sso.example');
  assert.equal(users.body.items.length, 1, 'created just in time, once');
  const events = await api('GET', `/audit?target_id=${users.body.items[0].id}`);
  assert.ok(events.body.items.some((e) => e.type === 'user.created'));
});

test('once deactivated, the same person is refused and not created again', async () => {
  const users = await api('GET', '/users?q=grace%40sso.example');
  const id = users.body.items[0].id;
  const off = await api('POST', `/users/${id}/deactivate`, { reason: 'left' });
  assert.equal(off.status, 200);
  await signInThroughTheProvider('grace');
  assert.equal(new URL(page.url()).pathname, '/sso/callback');
  // A person is told on a page of the instance, not with a JSON document.
  assert.match(await page.locator('h1').innerText(), /Unauthorized \(401\)/);
  assert.match(await page.locator('body').innerText(), /Single sign-on cannot sign you in here: the user is deactivated\. Ask your administrator/);
  const again = await api('GET', '/users?q=grace%40sso.example');
  assert.equal(again.body.items.length, 1);
  assert.equal(again.body.items[0].status, 'deactivated');
});
