// Every page a person can reach, checked with axe-core (WCAG 2.1 A and AA) in a real headless
// Chromium, as each kind of person sees it — signed out, an instance administrator, a person with
// no role, an org's admin, and an administrator in a Login as user session — with the default
// colours and with a yellow branding colour, at a phone's width and a desk's. Any violation fails.
// At a phone's width no page scrolls sideways, and each row of an org's members keeps its actions
// on screen beside the name.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

import { call } from './api.mjs';

const BASE = process.env.STEWARD_URL ?? 'http://127.0.0.1:8080';
const ADMIN_EMAIL = process.env.STEWARD_ADMIN_EMAIL ?? 'admin@example.com';
const ADMIN_PASSWORD = process.env.STEWARD_ADMIN_PASSWORD ?? 'change me, please';
const PASSWORD = 'an accessible password';
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const PHONE = { width: 375, height: 812 };
const DESK = { width: 1280, height: 900 };

let context;
let page;
let profile;
let token;
const ids = {};

async function api(method, path, body, bearer = token) {
  const r = await call(BASE, bearer, method, path, body);
  assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

async function signIn(email, password = PASSWORD) {
  await context.clearCookies();
  await page.goto(`${BASE}/login`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/login')), page.getByRole('button', { name: 'Sign in' }).click()]);
}

/** axe-core's WCAG 2.1 A and AA violations on the page now shown, one line each. */
async function violations() {
  if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) await page.evaluate(AXE);
  const result = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }));
  return result.violations.flatMap((v) => v.nodes.map((n) => `${v.id}: ${n.target.join(' ')} — ${n.failureSummary.split('\n')[1]?.trim() ?? ''}`));
}

/** Visits each path and gathers what is wrong on it: axe's violations and sideways scrolling. */
async function tour(who, paths, viewport) {
  await page.setViewportSize(viewport);
  const found = [];
  for (const path of paths) {
    await page.goto(`${BASE}${path}`);
    for (const v of await violations()) found.push(`${who} ${viewport.width}px ${path}: ${v}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 0) found.push(`${who} ${viewport.width}px ${path}: scrolls sideways by ${overflow}px`);
  }
  return found;
}

before(async () => {
  const login = await fetch(`${BASE}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD }),
  });
  assert.equal(login.status, 200);
  token = (await login.json()).token;
  const user = async (email, name) => (await api('POST', '/users', { email, name, password: PASSWORD })).id;
  ids.owner = await user('owner@a11y.example', 'Olivia Owner');
  ids.admin = await user('admin@a11y.example', 'Adam Admin');
  ids.member = await user('member@a11y.example', 'Mina Member With A Rather Long Name');
  ids.gone = await user('gone@a11y.example', 'Gus Gone');
  ids.org = (await api('POST', '/orgs', {
    name: 'Accessible Co', owner_id: ids.owner, license: { operations: 1000, transfer: null, users: 10, teams: 3 },
  })).id;
  ids.frozen = (await api('POST', '/orgs', { name: 'Frozen Co', owner_id: ids.owner, license: { operations: 0 } })).id;
  await api('PUT', `/orgs/${ids.org}/members/${ids.admin}`, { role: 'admin' });
  await api('PUT', `/orgs/${ids.org}/members/${ids.member}`, { role: 'member' });
  await api('PUT', `/orgs/${ids.org}/members/${ids.gone}`, { role: 'viewer' });
  const team = await api('POST', `/orgs/${ids.org}/teams`, { name: 'Research' });
  await api('PUT', `/teams/${team.id}/members/${ids.member}`, { role: 'team_member' });
  await api('POST', `/orgs/${ids.org}/usage`, { operations: 400, transfer: 1048576 });
  await api('POST', `/users/${ids.gone}/deactivate`, { reason: 'Left the company' });
  await api('POST', `/orgs/${ids.org}/invitations`, { email: 'invited@a11y.example', role: 'viewer' });

  profile = mkdtempSync(join(tmpdir(), 'steward-a11y-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    viewport: PHONE,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-sync', '--no-first-run'],
  });
  page = context.pages()[0] ?? (await context.newPage());
});

after(async () => {
  await api('PATCH', '/instance', { branding: { primary_color: null } }).catch(() => {});
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/** Every page each kind of person reaches, toured at both widths. */
async function everyPage() {
  const found = [];
  const widths = [PHONE, DESK];
  await context.clearCookies();
  for (const w of widths) {
    found.push(...await tour('signed out', ['/login', '/forgot', '/nothing/here', '/invite/stw_setup_unknown', '/reset/stw_setup_unknown'], w));
  }
  await signIn(ADMIN_EMAIL, ADMIN_PASSWORD);
  const adminPages = [
    '/admin', '/admin/users', `/admin/users/${ids.member}`, `/admin/users/${ids.gone}`, `/admin/users/${ids.owner}/deactivate`,
    `/admin/users/${ids.gone}/reactivate`, `/admin/users/${ids.member}/suspend`, '/admin/orgs', `/admin/orgs/${ids.org}`, `/admin/orgs/${ids.frozen}`,
    `/admin/orgs/${ids.org}/deprovision`, '/admin/audit', '/admin/settings', '/app', '/app/security',
  ];
  for (const w of widths) found.push(...await tour('admin', adminPages, w));
  await signIn('member@a11y.example');
  for (const w of widths) found.push(...await tour('member', ['/app', `/app/orgs/${ids.org}`, '/app/security', '/admin'], w));
  // The answer that starts two-factor set-up: the QR code, the key and the code's field.
  await page.goto(`${BASE}/app/security`);
  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Set up two-factor sign-in' }).click()]);
  await page.waitForSelector('#totp-secret');
  for (const v of await violations()) found.push(`member two-factor set-up: ${v}`);
  await signIn('admin@a11y.example');
  for (const w of widths) {
    found.push(...await tour('org admin', ['/app', `/app/orgs/${ids.org}`, `/app/orgs/${ids.org}/members/${ids.member}/remove`], w));
  }
  await signIn('owner@a11y.example');
  for (const w of widths) found.push(...await tour('owner', ['/app', `/app/orgs/${ids.org}`, `/app/orgs/${ids.frozen}`], w));

  // Login as user: the administrator sees what the person sees, under the banner.
  await signIn(ADMIN_EMAIL, ADMIN_PASSWORD);
  await page.goto(`${BASE}/admin/users/${ids.admin}`);
  await page.getByLabel(/Reason/).fill('Checking what they see');
  await Promise.all([page.waitForURL(`${BASE}/app`), page.getByRole('button', { name: /Login as user/ }).click()]);
  for (const w of widths) found.push(...await tour('impersonating', ['/app', `/app/orgs/${ids.org}`, '/admin'], w));
  return found;
}

test('every page has no axe-core violation, with the default colours and with a yellow one', async () => {
  const found = await everyPage();
  await api('PATCH', '/instance', { branding: { primary_color: '#ffd60a' } });
  found.push(...(await everyPage()).map((v) => `yellow: ${v}`));
  assert.deepEqual(found, [], `\n${found.join('\n')}`);
});

test('on a phone each member row keeps its actions on screen beside the name', async () => {
  await signIn('admin@a11y.example');
  await page.setViewportSize(PHONE);
  await page.goto(`${BASE}/app/orgs/${ids.org}`);
  const rows = page.locator('#members-h ~ * tbody tr, #members-h ~ * .member');
  const count = await rows.count();
  assert.ok(count >= 3, `the members are listed (${count})`);
  const width = PHONE.width;
  for (let i = 0; i < count; i++) {
    const row = rows.nth(i);
    const name = await row.locator('.name, td').first().boundingBox();
    assert.ok(name && name.x >= 0 && name.x + name.width <= width, `row ${i}: the name is on screen`);
    for (const button of [...await row.getByRole('button').all(), ...await row.getByRole('combobox').all()]) {
      const box = await button.boundingBox();
      assert.ok(box && box.x >= 0 && box.x + box.width <= width, `row ${i}: "${await button.innerText()}" is on screen`);
    }
  }
});
