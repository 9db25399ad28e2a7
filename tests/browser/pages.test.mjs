// Steward's pages in a real headless Chromium against a running Steward (STEWARD_URL), signed in
// as the bootstrap admin (STEWARD_ADMIN_EMAIL / STEWARD_ADMIN_PASSWORD). Data is set up through
// the JSON API; everything asserted is done through the pages, as a person would.
// With STEWARD_SCREENSHOTS=<folder>, the main pages are saved there as PNG files.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

import { call } from './api.mjs';

const BASE = process.env.STEWARD_URL ?? 'http://127.0.0.1:8080';
const ADMIN_EMAIL = process.env.STEWARD_ADMIN_EMAIL ?? 'admin@example.com';
const ADMIN_PASSWORD = process.env.STEWARD_ADMIN_PASSWORD ?? 'change me, please';
const SHOTS = process.env.STEWARD_SCREENSHOTS;
const PASSWORD = 'a long password here';

let context;
let page;
let profile;
let token;
const ids = {};

const api = (method, path, body, bearer = token) => call(BASE, bearer, method, path, body);

async function created(method, path, body) {
  const r = await api(method, path, body);
  assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

async function waitUntilReady() {
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${BASE}/readyz`)).ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`Steward did not become ready at ${BASE}`);
}

/** Clicks something that submits a form or follows a link, and waits for the next page. */
async function go(locator) {
  const navigated = page.waitForEvent('framenavigated', (f) => f === page.mainFrame());
  await locator.click();
  await navigated;
  await page.waitForLoadState('load');
}

async function shot(name) {
  if (SHOTS) await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function signIn(email, password) {
  await page.goto(`${BASE}/login`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await go(page.getByRole('button', { name: 'Sign in' }));
}

/** The invitation link mailed to `email`, read from Steward's log (STEWARD_LOG). */
async function invitationLink(email) {
  assert.ok(process.env.STEWARD_LOG, 'STEWARD_LOG names the file Steward logs to');
  for (let i = 0; i < 100; i++) {
    const log = readFileSync(process.env.STEWARD_LOG, 'utf8').replace(/\x1b\[[0-9;]*m/g, '');
    const at = log.lastIndexOf(`to=${email}`);
    const found = at >= 0 ? log.slice(at).match(/\/invite\/(stw_setup_[A-Za-z0-9_-]+)/) : null;
    if (found) return `${BASE}/invite/${found[1]}`;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no invitation email to ${email} in the log`);
}

const heading = async () => (await page.locator('h1').first().textContent()).trim();
const flash = () => page.locator('.flash').first().innerText();

before(async () => {
  await waitUntilReady();
  const login = await fetch(`${BASE}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD }),
  });
  assert.equal(login.status, 200, 'the bootstrap admin can sign in through the API');
  token = (await login.json()).token;

  const user = (email, name) => created('POST', '/users', { email, name, password: PASSWORD });
  ids.ada = (await user('ada@acme.example', 'Ada Lovelace')).id;
  ids.bob = (await user('bob@acme.example', 'Bob Builder')).id;
  ids.grace = (await user('grace@acme.example', 'Grace Hopper')).id;
  ids.dan = (await user('dan@globex.example', 'Dan Dorsey')).id;
  ids.acme = (await created('POST', '/orgs', {
    name: 'Acme', owner_id: ids.ada, license: { operations: 10000, transfer: 1073741824, users: 10, teams: 5 },
  })).id;
  ids.globex = (await created('POST', '/orgs', {
    name: 'Globex', owner_id: ids.dan, license: { operations: 5000 },
  })).id;
  await created('PUT', `/orgs/${ids.acme}/members/${ids.bob}`, { role: 'member' });
  await created('PUT', `/orgs/${ids.acme}/members/${ids.grace}`, { role: 'admin' });
  const team = await created('POST', `/orgs/${ids.acme}/teams`, { name: 'Engineering' });
  await created('PUT', `/teams/${team.id}/members/${ids.bob}`, { role: 'team_member' });
  await created('POST', `/orgs/${ids.acme}/usage`, { operations: 3200, transfer: 268435456 });
  await created('POST', `/orgs/${ids.globex}/usage`, { operations: 1200 });

  if (SHOTS) mkdirSync(SHOTS, { recursive: true });
  profile = mkdtempSync(join(tmpdir(), 'steward-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--disable-quic', '--no-first-run',
    ],
  });
  page = context.pages()[0] ?? (await context.newPage());
});

after(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

test('an instance admin signs in and lands on Administration', async () => {
  await page.goto(`${BASE}/admin/users`);
  assert.match(page.url(), /\/login\?next=/, 'signed out, administration sends to the sign-in page');
  await shot('login');
  await page.getByLabel('Email').fill(ADMIN_EMAIL);
  await page.getByLabel('Password').fill('not the password');
  await go(page.getByRole('button', { name: 'Sign in' }));
  assert.match(await page.locator('[role=alert]').innerText(), /email or password is wrong/);

  await signIn(ADMIN_EMAIL, ADMIN_PASSWORD);
  assert.equal(new URL(page.url()).pathname, '/admin');
  assert.equal(await heading(), 'Administration');
  assert.ok(await page.getByRole('navigation', { name: 'Administration' }).isVisible());
  // The instance at a glance: the sign-ins chart is an image with a name, its numbers a table.
  const chart = page.getByRole('img', { name: /Sign-ins per day/ });
  assert.ok(await chart.isVisible());
  assert.match(await chart.getAttribute('aria-describedby'), /sign-ins-per-day-d/);
  await shot('admin-overview');
});

test('branding set in the settings is on every page', async () => {
  await page.goto(`${BASE}/admin/settings`);
  await page.getByLabel('Product name').fill('Northwind Cloud');
  await page.getByLabel('Primary colour').fill('#0a7d55');
  await go(page.getByRole('button', { name: 'Save the settings' }));
  assert.match(await flash(), /settings are saved/);
  await page.goto(`${BASE}/admin/users`);
  assert.equal(await page.locator('.brand').innerText(), 'Northwind Cloud');
  assert.match(await page.title(), /Northwind Cloud$/);
  const color = await page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue('--primary').trim());
  assert.equal(color, '#0a7d55');
});

test('find a user, deactivate them with a confirmation, and reactivate them again', async () => {
  const bobSession = await fetch(`${BASE}/api/v1/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'bob@acme.example', password: PASSWORD }),
  }).then((r) => r.json());

  await page.goto(`${BASE}/admin`);
  await page.getByLabel('Find a user').fill('bob');
  await go(page.getByRole('button', { name: 'Search' }));
  assert.match(page.url(), /\/admin\/users\?q=bob/);
  const adminNav = page.getByRole('navigation', { name: 'Administration' });
  assert.equal(await adminNav.getByRole('link', { name: 'Users' }).getAttribute('aria-current'), 'page');
  assert.equal(await adminNav.getByRole('link', { name: 'Overview' }).getAttribute('aria-current'), null);
  const rows = page.locator('tbody tr');
  assert.equal(await rows.count(), 1, 'the search finds Bob only');
  await shot('admin-users');
  await go(page.getByRole('link', { name: 'Bob Builder' }));
  assert.equal(new URL(page.url()).pathname, `/admin/users/${ids.bob}`);
  assert.equal(await page.locator('#user-status').innerText(), 'active');
  assert.match(await page.locator('#memberships-h + ul').innerText(), /Acme — member/);

  await go(page.getByRole('link', { name: 'Deactivate' }));
  assert.match(await page.locator('h2').innerText(), /Deactivate Bob Builder\?/);
  assert.equal((await api('GET', `/users/${ids.bob}`)).body.status, 'active', 'the confirmation step changes nothing');
  await page.getByLabel(/Reason/).fill('left the company');
  await go(page.getByRole('button', { name: 'Deactivate Bob Builder' }));
  assert.match(await flash(), /Bob Builder is deactivated/);
  assert.equal(await page.locator('#user-status').innerText(), 'deactivated');
  assert.match(await page.locator('#status-story').innerText(), /^\d{4}-\d\d-\d\d \d\d:\d\d UTC: .* deactivated Bob Builder, saying “left the company”\.$/);
  assert.match(await page.locator('#notifications-quiet').innerText(), /Nothing is sent while Bob Builder is deactivated/);
  await shot('admin-user-deactivated');
  assert.match(await page.locator('#memberships-h + ul').innerText(), /dormant/);
  assert.equal((await api('GET', '/me', null, bobSession.token)).status, 401, "Bob's session died at once");

  await go(page.getByRole('link', { name: 'Reactivate' }));
  await go(page.getByRole('button', { name: 'Reactivate Bob Builder' }));
  assert.match(await flash(), /Bob Builder is reactivated/);
  assert.equal(await page.locator('#user-status').innerText(), 'active');
  const memberships = await page.locator('#memberships-h + ul').innerText();
  assert.match(memberships, /Acme — member/);
  assert.doesNotMatch(memberships, /dormant/);
  assert.match(await page.locator('#history-h ~ .table-wrap').innerText(),
    /reactivated Bob Builder\.[\s\S]*deactivated Bob Builder, saying “left the company”\./);
  assert.match(await page.locator('#status-story').innerText(), /reactivated Bob Builder/);
});

test('Login as user shows what the user sees, and Return to administration comes back', async () => {
  await page.goto(`${BASE}/admin/users/${ids.ada}`);
  await shot('admin-user');
  await page.getByLabel(/Reason for signing in as Ada Lovelace/).fill('checking the dashboard for ticket 42');
  await go(page.getByRole('button', { name: 'Login as user' }));
  assert.equal(new URL(page.url()).pathname, '/app');
  const banner = page.getByRole('region', { name: 'Login as user' });
  assert.match(await banner.innerText(), /You are signed in as Ada Lovelace/);
  assert.match(await banner.innerText(), /Reason: “checking the dashboard for ticket 42”\. This session ends at \d\d:\d\d UTC, in \d+ (minutes|hours)\./);
  const header = page.locator('header.top');
  assert.equal(await header.getByRole('button', { name: 'Sign out' }).count(), 0, 'the header does not offer to sign out');
  assert.ok(await header.getByRole('button', { name: 'Return to administration' }).isVisible());
  assert.equal(await heading(), 'Welcome, Ada Lovelace');
  const acme = page.locator('.org-cards .card', { hasText: 'Acme' });
  assert.match(await acme.innerText(), /Your role: owner/);
  assert.match(await acme.innerText(), /Operations this period\s*3200 of 10000/);
  await shot('app-dashboard-impersonated');

  await page.goto(`${BASE}/app/security`);
  assert.ok(await banner.isVisible(), 'the banner is on every page');
  assert.match(await page.locator('#password-h').locator('..').innerText(), /cannot change your password/);
  await page.goto(`${BASE}/admin`);
  assert.match(await page.locator('main').innerText(), /You are signed in as Ada Lovelace through Login as user[\s\S]*Return to administration/);
  assert.ok(await banner.isVisible());

  await go(banner.getByRole('button', { name: 'Return to administration' }));
  assert.equal(new URL(page.url()).pathname, `/admin/users/${ids.ada}`, 'back on the page the admin came from');
  assert.equal(await heading(), 'Administration');
  assert.equal(await page.getByRole('region', { name: 'Login as user' }).count(), 0, 'no banner any more');
  assert.match(await flash(), /back in your own session/);
  const events = (await api('GET', `/audit?target_id=${ids.ada}&type=user.impersonation_started`)).body.items;
  assert.equal(events.length, 1);
});

test('deprovision an organization through the wizard, then restore it', async () => {
  await page.goto(`${BASE}/admin/orgs`);
  await go(page.getByRole('link', { name: 'Globex' }));
  assert.equal(await page.locator('#org-owner').innerText(), 'Dan Dorsey');
  await shot('admin-org');
  await go(page.getByRole('link', { name: 'Deprovision…' }));
  await page.getByLabel(/Reason/).fill('subscription cancelled');
  await go(page.getByRole('button', { name: 'Show the plan' }));
  const plan = await page.locator('#plan').innerText();
  assert.ok(plan.length > 0, 'the plan is shown');
  const facts = await page.locator('#plan-facts').innerText();
  assert.match(facts, /“subscription cancelled”/);
  assert.match(facts, /Dan Dorsey, the owner, becomes member/);
  assert.equal((await api('GET', `/orgs/${ids.globex}`)).body.state, 'active', 'the dry run changed nothing');
  await shot('deprovision-plan');
  await go(page.getByRole('button', { name: 'Deprovision now' }));
  assert.match(await flash(), /deprovisioned/);
  assert.equal(await page.locator('#org-state').innerText(), 'deprovisioned');
  assert.equal(await page.locator('#org-owner').innerText(), 'Placeholder owner');
  assert.ok(await page.locator('h2 .badge.frozen').isVisible(), 'a deprovisioned org shows Frozen');

  // The check the procedure asks for: Login as the former owner and see their dashboard.
  await go(page.getByRole('link', { name: 'Dan Dorsey' }));
  await page.getByLabel(/Reason for signing in as Dan Dorsey/).fill('checking the deprovisioning');
  await go(page.getByRole('button', { name: 'Login as user' }));
  const globex = page.locator('.org-cards .card', { hasText: 'Globex' });
  assert.match(await globex.innerText(), /Your role: member/, 'the former owner is demoted');
  assert.ok(await globex.locator('.badge.frozen').isVisible(), 'the dashboard shows Globex Frozen');
  assert.equal(await page.locator(`input[name="org:${ids.globex}:org_activity"]`).isChecked(), false, "Globex's emails are off");
  assert.equal(await page.locator('input[name=security]').isChecked(), true, 'the person\'s security emails stay on');
  await shot('app-dashboard-frozen');
  await go(page.getByRole('region', { name: 'Login as user' }).getByRole('button', { name: 'Return to administration' }));
  assert.equal(new URL(page.url()).pathname, `/admin/users/${ids.dan}`);
  await page.goto(`${BASE}/admin/orgs/${ids.globex}`);

  assert.equal(await page.getByRole('button', { name: 'Transfer ownership' }).count(), 0, 'a deprovisioned org offers Restore, not Transfer');
  await go(page.getByRole('link', { name: 'Restore…' }));
  assert.match(await page.locator('main').innerText(), /deprovisioned .*: “subscription cancelled”/);
  await go(page.getByRole('button', { name: 'Restore Globex' }));
  assert.match(await flash(), /restored/);
  assert.equal(await page.locator('#org-state').innerText(), 'active');
  assert.equal(await page.locator('#org-owner').innerText(), 'Dan Dorsey');
  const org = (await api('GET', `/orgs/${ids.globex}`)).body;
  assert.equal(org.license.operations, 5000, 'the license came back');
  assert.equal(org.frozen, false);
  const settings = (await api('GET', `/users/${ids.dan}/notifications`)).body;
  assert.equal(settings.orgs.find((o) => o.org_id === ids.globex).categories.org_activity, true, "Globex's emails came back");
  assert.equal(settings.categories.security, true);
});

test('an org admin invites a member from the dashboard', async () => {
  await go(page.getByRole('button', { name: 'Sign out' }));
  assert.equal(new URL(page.url()).pathname, '/login');
  // From the keyboard only: the email field has focus, Tab moves on, Enter submits.
  await page.waitForFunction(() => document.activeElement?.id === 'email');
  await page.keyboard.type('grace@acme.example');
  await page.keyboard.press('Tab');
  await page.keyboard.type(PASSWORD);
  const navigated = page.waitForEvent('framenavigated', (f) => f === page.mainFrame());
  await page.keyboard.press('Enter');
  await navigated;
  await page.waitForLoadState('load');
  assert.equal(new URL(page.url()).pathname, '/app', 'a user without instance roles lands on the dashboard');
  assert.equal(await page.getByRole('link', { name: 'Administration' }).count(), 0);
  await go(page.getByRole('link', { name: 'Acme' }).first());
  await page.getByLabel('Invite by email').fill('eve@acme.example');
  await page.getByLabel('as', { exact: true }).selectOption('member');
  await go(page.getByRole('button', { name: 'Invite' }));
  assert.match(await flash(), /eve@acme\.example is invited/);
  const eve = (await api('GET', '/users?q=eve')).body.items;
  assert.equal(eve.length, 1);
  assert.equal(eve[0].status, 'invited');

  // Eve follows the link in her email (Steward logs mail when no SMTP server is configured).
  const link = await invitationLink('eve@acme.example');
  await go(page.getByRole('button', { name: 'Sign out' }));
  await page.goto(link);
  assert.match(await heading(), /You are invited to Acme/);
  await page.getByLabel('Your name').fill('Eve Example');
  await page.getByLabel(/Choose a password/).fill(PASSWORD);
  await page.getByLabel('The same password again').fill(PASSWORD);
  await go(page.getByRole('button', { name: 'Accept the invitation' }));
  assert.match(await flash(), /invitation is accepted/);
  await signIn('eve@acme.example', PASSWORD);
  assert.match(await page.locator('.org-cards .card', { hasText: 'Acme' }).innerText(), /Your role: member/);

  await go(page.getByRole('button', { name: 'Sign out' }));
  await signIn('grace@acme.example', PASSWORD);
  await page.goto(`${BASE}/app/orgs/${ids.acme}`);
  assert.match(await page.locator('#members-h ~ .table-wrap').innerText(), /Eve Example\s+eve@acme\.example\s+member/);
  await shot('app-org');
});

test('pages fit a narrow screen and work from the keyboard', async () => {
  await page.setViewportSize({ width: 375, height: 740 });
  for (const path of [`/app/orgs/${ids.acme}`, '/app/security', '/app']) {
    await page.goto(`${BASE}${path}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${path}: no sideways scrolling on a phone (${overflow}px too wide)`);
  }
  await shot('app-dashboard-narrow');
  await page.goto(`${BASE}/app/orgs/${ids.acme}`);
  await page.locator('#members-h').scrollIntoViewIfNeeded();
  if (SHOTS) await page.screenshot({ path: join(SHOTS, 'app-org-members-narrow.png') });
  await go(page.getByRole('button', { name: 'Sign out' }));
  await signIn(ADMIN_EMAIL, ADMIN_PASSWORD);
  for (const path of [`/admin/orgs/${ids.acme}`, `/admin/users/${ids.ada}`, '/admin/audit', '/admin/settings']) {
    await page.goto(`${BASE}${path}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${path}: no sideways scrolling on a phone (${overflow}px too wide)`);
  }
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content');
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'main', 'the skip link moves focus to the content');
  await page.setViewportSize({ width: 1280, height: 900 });
});
