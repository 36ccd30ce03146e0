/**
 * The web console end to end: Debian's Chromium driven by playwright-core against the real platform
 * (`npm start`'s launcher: wrangler dev + bridge). Screenshots go to test-results/console/.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { audit, openBrowser } from './browser';
import { root, startPlatform, type Platform } from './processes';

const shots = join(root, 'test-results/console');

describe('web console in Chromium', () => {
  const state = mkdtempSync(join(tmpdir(), 'edgeflux-console-state-'));
  let platform: Platform;
  let browser: Awaited<ReturnType<typeof openBrowser>>;
  let page: Page;
  const consoleErrors: string[] = [];
  const a11y: string[] = [];
  const people = { owner: '', viewer: '', ownerEmail: '' };

  beforeAll(async () => {
    mkdirSync(shots, { recursive: true });
    platform = await startPlatform({ EDGEFLUX_STATE_DIR: state });
    browser = await openBrowser();
    page = browser.page;
    page.on('pageerror', (e) => consoleErrors.push(e.message));
    page.setDefaultTimeout(15_000);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await platform?.stop();
    rmSync(state, { recursive: true, force: true });
  });

  it('routes browser navigations: the SPA for console paths, the worker for API paths', async () => {
    const nav = { headers: { 'sec-fetch-mode': 'navigate', accept: 'text/html' } };
    // node:http, not fetch: fetch sends its own `Sec-Fetch-Mode: cors`, as a page's fetch() does.
    const navigate = (path: string) =>
      new Promise<{ status: number; body: string }>((ok, fail) => {
        httpGet(`${platform.url}${path}`, nav, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => ok({ status: res.statusCode ?? 0, body }));
        }).on('error', fail);
      });
    for (const path of ['/', '/login', '/o/org-1/channels/ch-1/history']) {
      const res = await navigate(path);
      expect(res.status, path).toBe(200);
      expect(res.body, path).toContain('<div id="app">');
    }
    // Not a navigation (curl, fetch, a missing script): the worker's 404 problem, never the app with 200.
    for (const path of ['/nope', '/o/org-1', '/assets/no-such-chunk.js', '/foo.json']) {
      const res = await fetch(`${platform.url}${path}`, { headers: { accept: '*/*' } });
      expect(res.status, path).toBe(404);
      expect(res.headers.get('content-type'), path).toMatch(/problem\+json/);
    }
    const js = await fetch(`${platform.url}/assets/main.js`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/javascript/);
    await js.body?.cancel();
    const orgs = await fetch(`${platform.url}/orgs`, nav);
    expect(orgs.status).toBe(401);
    expect(orgs.headers.get('content-type')).toMatch(/problem\+json/);
    expect(await (await fetch(`${platform.url}/health`, nav)).json()).toMatchObject({ status: 'ok' });
    const doc = (await (await fetch(`${platform.url}/openapi.json`, nav)).json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toBe('3.1.0');

    // Every route of the API, called as a browser navigation would, is answered by the worker (JSON), never the app.
    let checked = 0;
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const method of Object.keys(ops).filter((m) => ['get', 'post', 'put', 'patch', 'delete'].includes(m))) {
        const res = await fetch(`${platform.url}${path.replace(/\{[^}]+\}/g, 'x')}`, { method: method.toUpperCase(), headers: nav.headers, body: method === 'get' || method === 'delete' ? undefined : '{}' });
        const type = res.headers.get('content-type') ?? '';
        expect(type, `${method} ${path}`).not.toMatch(/text\/html/);
        expect(res.status, `${method} ${path}`).toBeLessThan(500);
        await res.body?.cancel();
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(40);
  });

  it('registers, provisions, watches a channel live and downloads its history', async () => {
    const email = `console-${Date.now()}@example.com`;
    await page.goto(`${platform.url}/`);

    // Register (and be logged in).
    await page.getByLabel('Email').waitFor();
    a11y.push(...(await audit(page)));
    await page.getByRole('button', { name: 'Create an account' }).click();
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill('correct horse battery');
    await page.getByRole('button', { name: 'Create account' }).click();

    // First org.
    await page.getByLabel('Organization name').fill('acme');
    await page.getByRole('button', { name: 'Create organization' }).click();
    await page.waitForURL(/\/o\/[^/]+\/devices$/);
    const org = /\/o\/([^/]+)\//.exec(page.url())![1]!;

    // A device: its key is shown once.
    await page.getByRole('button', { name: 'New device' }).click();
    const dialog = page.getByRole('dialog', { name: 'New device' }); // each dialog is named by its own title
    await dialog.getByLabel('Name').fill('thermo-1');
    await dialog.getByLabel('Metadata (JSON object)').fill('{"room":"lab"}');
    await dialog.getByRole('button', { name: 'Create' }).click();
    const deviceKey = (await page.locator('[data-secret]').textContent())!.trim();
    expect(deviceKey.length).toBeGreaterThan(20);
    // The key shown once has focus (not the New device button the closing dialog would return it to).
    await expect.poll(() => page.evaluate(() => document.activeElement?.hasAttribute('data-secret'))).toBe(true);
    await page.getByRole('cell', { name: 'thermo-1', exact: true }).waitFor();
    a11y.push(...(await audit(page)));
    await page.screenshot({ path: join(shots, '1-device-key.png') });
    await page.getByRole('button', { name: 'Done' }).click();
    await expect.poll(() => page.locator('[data-secret]').count()).toBe(0);

    // Filters: by name and by metadata.
    await page.getByLabel('Metadata contains (JSON)').fill('{"room":"attic"}');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.getByText('No devices match the filter').waitFor();
    await page.getByLabel('Metadata contains (JSON)').fill('{"room":"lab"}');
    await page.getByLabel('Name contains').fill('THERMO');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.getByRole('cell', { name: 'thermo-1', exact: true }).waitFor();

    // A channel, then connect the device to it.
    await page.getByRole('link', { name: 'Channels' }).click();
    await page.getByRole('button', { name: 'New channel' }).click();
    await page.getByRole('dialog').getByLabel('Name').fill('telemetry');
    await page.getByRole('dialog').getByRole('button', { name: 'Create' }).click();
    await page.getByRole('link', { name: 'telemetry', exact: true }).waitFor();

    await page.getByRole('link', { name: 'Connections' }).click();
    await page.getByLabel('Devices to connect').selectOption({ label: 'thermo-1' });
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await page.getByRole('checkbox', { name: 'thermo-1 may publish' }).waitFor();
    expect(await page.getByRole('checkbox', { name: 'thermo-1 may subscribe' }).isChecked()).toBe(true);
    a11y.push(...(await audit(page)));

    // Two quick clicks: one change at a time, each from the state after the last; the second waits its turn
    // (refused while the first is under way) instead of overwriting the first from stale types.
    const { access: ownerToken } = JSON.parse((await page.evaluate(() => localStorage.getItem('edgeflux.session')))!) as { access: string };
    const connectedTypes = async () => {
      const ch = ((await (await fetch(`${platform.url}/orgs/${org}/channels`, { headers: { authorization: `Bearer ${ownerToken}` } })).json()) as { items: { id: string }[] }).items[0]!.id;
      const res = await fetch(`${platform.url}/orgs/${org}/channels/${ch}/devices`, { headers: { authorization: `Bearer ${ownerToken}` } });
      return ((await res.json()) as { items: { types: string[] }[] }).items.map((d) => [...d.types].sort());
    };
    const box = (t: string) => page.getByRole('checkbox', { name: `thermo-1 may ${t}` });
    const settled = () => page.locator('table[aria-busy="false"]').waitFor();
    await page.evaluate(() => {
      (document.querySelector('[aria-label="thermo-1 may publish"]') as HTMLElement).click();
      (document.querySelector('[aria-label="thermo-1 may subscribe"]') as HTMLElement).click();
    });
    await expect.poll(connectedTypes).toEqual([['subscribe']]);
    await settled();
    expect([await box('publish').isChecked(), await box('subscribe').isChecked()]).toEqual([false, true]);
    // Unticking the last type is a disconnect, asked first: declined (Playwright dismisses the confirm), nothing changes.
    await box('subscribe').click();
    expect(await box('subscribe').isChecked()).toBe(true);
    expect(await connectedTypes()).toEqual([['subscribe']]);
    await box('publish').click();
    await expect.poll(connectedTypes).toEqual([['publish', 'subscribe']]);
    await settled();
    expect(await box('publish').isChecked()).toBe(true);

    // The live view: messages and chart points arrive over the WebSocket, without a reload.
    await page.getByRole('link', { name: 'Channels' }).click();
    await page.getByRole('link', { name: 'telemetry', exact: true }).click();
    await page.waitForURL(/\/channels\/[^/]+$/);
    const channel = /\/channels\/([^/]+)$/.exec(page.url())![1]!;
    // The section stays marked on a channel's own pages.
    expect(await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Channels' }).getAttribute('aria-current')).toBe('true');
    await page.locator('output.state.open').waitFor();
    await page.evaluate(() => ((window as unknown as { notReloaded: boolean }).notReloaded = true));

    const publish = async (senml: unknown[]) => {
      const res = await fetch(`${platform.url}/channels/${channel}/messages/lab`, { method: 'POST', headers: { authorization: `Device ${deviceKey}`, 'content-type': 'application/senml+json' }, body: JSON.stringify(senml) });
      expect(res.status).toBe(202);
      return ((await res.json()) as { seq: number }).seq;
    };
    const seq1 = await publish([{ bn: 'thermo-1/', n: 'temp', u: 'Cel', v: 21.5 }]);
    await page.locator(`li.message[data-seq="${seq1}"]`).getByText('21.5').waitFor();
    await page.locator('figure.chart[data-points="1"]').waitFor();
    await page.locator('tr[data-series="thermo-1/temp"]').getByRole('cell', { name: '21.5', exact: true }).waitFor();
    await page.locator('figure.chart canvas').waitFor();

    const seq2 = await publish([{ bn: 'thermo-1/', n: 'temp', u: 'Cel', v: 23.25 }, { n: 'humidity', u: '%RH', v: 41 }]);
    await page.locator(`li.message[data-seq="${seq2}"]`).waitFor();
    await page.locator('figure.chart[data-points="3"]').waitFor();
    await page.locator('tr[data-series="thermo-1/temp"]').getByRole('cell', { name: '23.25', exact: true }).waitFor();
    await page.locator('tr[data-series="thermo-1/humidity"]').waitFor();
    for (const v of [22.1, 22.6, 22.4]) await publish([{ bn: 'thermo-1/', n: 'temp', u: 'Cel', v }, { n: 'humidity', u: '%RH', v: v * 2 - 3 }]);
    await page.locator('figure.chart[data-points="9"]').waitFor();
    expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
    a11y.push(...(await audit(page)));
    await page.screenshot({ path: join(shots, '2-live.png'), fullPage: true });

    // History: SenML records (once the actor has drained them to D1), aggregation, CSV.
    await page.getByRole('link', { name: 'History' }).click();
    await page.getByLabel('Format').selectOption('senml');
    await expect
      .poll(
        async () => {
          await page.getByRole('button', { name: 'Run query' }).click();
          await page.locator('[data-result-count]').waitFor();
          return Number(await page.locator('[data-result-count]').getAttribute('data-result-count'));
        },
        { timeout: 15_000 },
      )
      .toBe(9); // 1 + 2 + 3 × 2 records
    await page.getByLabel('SenML name').fill('thermo-1/temp');
    await page.getByLabel('Aggregation').selectOption('avg');
    await page.getByRole('button', { name: 'Run query' }).click();
    await page.locator('[data-result-count="1"]').waitFor();
    await page.locator('table.results').getByRole('cell', { name: '22.37', exact: true }).waitFor(); // (21.5 + 23.25 + 22.1 + 22.6 + 22.4) / 5
    a11y.push(...(await audit(page)));
    await page.screenshot({ path: join(shots, '3-history.png'), fullPage: true });

    await page.getByLabel('Aggregation').selectOption('');
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download CSV' }).click()]);
    const csv = readFileSync((await download.path())!, 'utf8');
    const lines = csv.trim().split('\r\n');
    expect(lines[0]).toMatch(/^seq,time,subtopic,publisher,name,/);
    expect(lines).toHaveLength(6); // header + the 5 temperature records
    expect(csv).toContain('thermo-1/temp');
    expect(csv).toContain('23.25');
    expect(download.suggestedFilename()).toMatch(new RegExp(`^channel-${channel}-.*\\.csv$`));

    // An API key: shown once, and it works.
    await page.getByRole('link', { name: 'Keys' }).click();
    await page.getByRole('button', { name: 'New API key' }).click();
    await page.getByRole('dialog').getByLabel('Name').fill('dashboard');
    await page.getByRole('dialog').getByLabel(/Scopes/).fill('messages:read');
    await page.getByRole('dialog').getByRole('button', { name: 'Create' }).click();
    const apiKey = (await page.locator('[data-secret]').textContent())!.trim();
    const read = await fetch(`${platform.url}/channels/${channel}/messages?limit=1`, { headers: { authorization: `Bearer ${apiKey}` } });
    expect(read.status).toBe(200);
    const devices = await fetch(`${platform.url}/orgs/${org}/devices`, { headers: { authorization: `Bearer ${apiKey}` } });
    expect(devices.status).toBe(403);

    expect(consoleErrors).toEqual([]);
  }, 120_000);

  it('edits and deletes, manages apps and members, and switches org', async () => {
    page.on('dialog', (d) => void d.accept()); // confirm() before deleting
    const firstOrg = /\/o\/([^/]+)\//.exec(page.url())![1]!;

    // Edit a device's metadata; create and delete another device.
    await page.getByRole('link', { name: 'Devices' }).click();
    await page.getByRole('button', { name: 'Edit thermo-1' }).click();
    await page.getByRole('dialog').getByLabel('Metadata (JSON object)').fill('{"room":"lab","floor":2}');
    await page.getByRole('dialog').getByRole('button', { name: 'Save' }).click();
    await page.getByRole('cell', { name: '{"room":"lab","floor":2}' }).waitFor();
    // An emptied metadata box clears the metadata.
    await page.getByRole('button', { name: 'Edit thermo-1' }).click();
    await page.getByRole('dialog').getByLabel('Metadata (JSON object)').fill('');
    await page.getByRole('dialog').getByRole('button', { name: 'Save' }).click();
    await expect.poll(() => page.getByRole('cell', { name: '{"room":"lab","floor":2}' }).count()).toBe(0);
    await page.getByRole('button', { name: 'Edit thermo-1' }).click();
    expect(await page.getByRole('dialog').getByLabel('Metadata (JSON object)').inputValue()).toBe('{}');
    await page.getByRole('dialog').getByLabel('Metadata (JSON object)').fill('{"room":"lab"}');
    await page.getByRole('dialog').getByRole('button', { name: 'Save' }).click();
    await page.getByRole('cell', { name: '{"room":"lab"}' }).waitFor();
    await page.getByRole('button', { name: 'New device' }).click();
    await page.getByRole('dialog').getByLabel('Name').fill('spare');
    await page.keyboard.press('Enter'); // the dialog's form submits from the keyboard
    await page.getByRole('button', { name: 'Done' }).click();
    await page.getByRole('cell', { name: 'spare', exact: true }).waitFor();
    await page.getByRole('button', { name: 'Delete spare' }).click();
    await expect.poll(() => page.getByRole('cell', { name: 'spare', exact: true }).count()).toBe(0);

    // An app: its client secret is shown once.
    await page.getByRole('link', { name: 'Apps' }).click();
    await page.getByRole('button', { name: 'New app' }).click();
    await page.getByRole('dialog').getByLabel('Name').fill('grafana');
    await page.getByRole('dialog').getByLabel(/Scopes/).fill('messages:read, channels:read');
    await page.getByRole('dialog').getByRole('button', { name: 'Create' }).click();
    const appSecret = (await page.locator('[data-secret]').textContent())!.trim();
    expect(appSecret.length).toBeGreaterThan(20);
    const clientId = /client id (\S+)\)/.exec((await page.locator('section.secret').getAttribute('aria-label'))!)![1]!;
    await page.getByRole('cell', { name: 'messages:read channels:read' }).waitFor();
    await page.getByLabel('Filter by name').fill('zzz');
    await page.getByText('No apps match the filter').waitFor();
    await page.getByLabel('Filter by name').fill('GRAF');
    await page.getByRole('cell', { name: 'grafana', exact: true }).waitFor();
    // A new secret after a leak: the dialog's checkbox also ends the tokens issued with the old one.
    const appToken = async (secret: string) => {
      const r = await fetch(`${platform.url}/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ grant_type: 'client_credentials', client_id: clientId, client_secret: secret }) });
      return ((await r.json()) as { access_token: string }).access_token;
    };
    const channelsAs = async (token: string) => (await fetch(`${platform.url}/orgs/${firstOrg}/channels`, { headers: { authorization: `Bearer ${token}` } })).status;
    const leaked = await appToken(appSecret);
    expect(await channelsAs(leaked)).toBe(200);
    await page.getByRole('button', { name: 'New secret for grafana' }).click();
    const rotation = page.getByRole('dialog', { name: 'New secret for grafana' });
    await rotation.getByLabel(/Also revoke the API keys this app issued/).check();
    a11y.push(...(await audit(page)));
    await rotation.getByRole('button', { name: 'New secret' }).click();
    await page.getByRole('region', { name: 'New client secret of app grafana (0 API keys revoked, its tokens ended)' }).waitFor();
    const newSecret = (await page.locator('[data-secret]').textContent())!.trim();
    expect(newSecret).not.toBe(appSecret);
    expect(await channelsAs(leaked)).toBe(401);
    expect(await channelsAs(await appToken(newSecret))).toBe(200);
    await page.getByRole('button', { name: 'Done' }).click();

    // A member: another registered user, added as viewer, promoted to admin.
    const other = `member-${Date.now()}@example.com`;
    expect((await fetch(`${platform.url}/users`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: other, password: 'correct horse battery' }) })).status).toBe(201);
    await page.getByRole('link', { name: 'Members' }).click();
    await page.getByLabel('Email of a registered user').fill(other);
    await page.getByLabel('Role', { exact: true }).selectOption('viewer');
    await page.getByRole('button', { name: 'Add member' }).click();
    await page.getByLabel(`Role of ${other}`).waitFor();
    expect(await page.getByLabel(`Role of ${other}`).inputValue()).toBe('viewer');
    await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'PATCH' && r.url().includes('/members/') && r.status() === 204),
      page.getByLabel(`Role of ${other}`).selectOption('admin'),
    ]);
    await page.reload();
    await page.getByLabel(`Role of ${other}`).waitFor();
    expect(await page.getByLabel(`Role of ${other}`).inputValue()).toBe('admin');
    a11y.push(...(await audit(page)));
    await page.getByLabel('Filter by email').fill('member-');
    await expect.poll(() => page.locator('tbody tr').count()).toBe(1); // the owner is filtered out

    // Added without touching the role picker: a member (never an owner).
    await page.getByLabel('Filter by email').fill('');
    const plain = `plain-${Date.now()}@example.com`;
    expect((await fetch(`${platform.url}/users`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: plain, password: 'correct horse battery' }) })).status).toBe(201);
    expect(await page.getByLabel('Role', { exact: true }).inputValue()).toBe('member');
    await page.getByLabel('Email of a registered user').fill(plain);
    await page.getByRole('button', { name: 'Add member' }).click();
    await page.getByLabel(`Role of ${plain}`).waitFor();
    expect(await page.getByLabel(`Role of ${plain}`).inputValue()).toBe('member');
    expect(await page.getByLabel('Role', { exact: true }).inputValue()).toBe('member');
    await page.getByRole('button', { name: `Remove ${plain}` }).click();
    await expect.poll(() => page.getByLabel(`Role of ${plain}`).count()).toBe(0);

    // A second org, then back to the first with the switcher.
    await page.getByRole('button', { name: 'New organization' }).click();
    await page.getByRole('dialog').getByLabel('Organization name').fill('second');
    await page.getByRole('dialog').getByRole('button', { name: 'Create organization' }).click();
    await page.waitForURL((u) => !u.pathname.includes(firstOrg) && u.pathname.endsWith('/devices'));
    await page.getByText('No devices yet').waitFor();
    const secondOrg = /\/o\/([^/]+)\//.exec(page.url())![1]!;

    // Paging: a click on the current section starts it afresh; a page emptied by a delete steps back.
    const { access } = JSON.parse((await page.evaluate(() => localStorage.getItem('edgeflux.session')))!) as { access: string };
    const bulk = await fetch(`${platform.url}/orgs/${secondOrg}/devices/bulk`, {
      method: 'POST',
      headers: { authorization: `Bearer ${access}`, 'content-type': 'application/json' },
      body: JSON.stringify({ devices: Array.from({ length: 21 }, (_, i) => ({ name: `bulk-${String(i).padStart(2, '0')}` })) }),
    });
    expect(bulk.status).toBeLessThan(300);
    await page.getByRole('link', { name: 'Devices' }).click();
    await page.getByText('1–20 of 21').waitFor();
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByText('21–21 of 21').waitFor();
    await page.getByRole('link', { name: 'Devices' }).click();
    await page.getByText('1–20 of 21').waitFor();
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByText('21–21 of 21').waitFor();
    const last = (await page.locator('tbody tr td:first-child').first().textContent())!;
    await page.getByRole('button', { name: `Delete ${last}` }).click();
    await page.getByText('20 items').waitFor();
    await expect.poll(() => page.locator('tbody tr').count()).toBe(20);
    expect(await page.getByText('No devices yet').count()).toBe(0);

    // A key shown once in this org is gone after switching to another (so are filters and pages).
    await page.getByRole('button', { name: 'New device' }).click();
    await page.getByRole('dialog', { name: 'New device' }).getByLabel('Name').fill('other');
    await page.getByRole('dialog', { name: 'New device' }).getByRole('button', { name: 'Create' }).click();
    await page.locator('[data-secret]').waitFor();
    await page.getByLabel('Organization', { exact: true }).selectOption(firstOrg);
    await page.getByRole('cell', { name: 'thermo-1', exact: true }).waitFor();
    expect(await page.locator('[data-secret]').count()).toBe(0);
    expect(page.url()).toContain(`/o/${firstOrg}/devices`);
    expect(consoleErrors).toEqual([]);
  }, 60_000);

  it('passes an accessibility audit (axe-core, WCAG 2.1 A/AA) on every page visited', async () => {
    await page.getByRole('link', { name: 'Keys' }).click();
    await page.getByRole('button', { name: 'New API key' }).click();
    a11y.push(...(await audit(page))); // with the dialog open
    await page.keyboard.press('Escape');
    await expect.poll(() => page.getByRole('dialog').count()).toBe(0);
    // Messages published just before the live view opens (maybe not yet stored in D1) are shown too.
    const { access } = JSON.parse((await page.evaluate(() => localStorage.getItem('edgeflux.session')))!) as { access: string };
    const orgId = /\/o\/([^/]+)\//.exec(page.url())![1]!;
    const headers = { authorization: `Bearer ${access}`, 'content-type': 'application/json' };
    const fresh = (await (await fetch(`${platform.url}/orgs/${orgId}/channels`, { method: 'POST', headers, body: JSON.stringify({ name: 'fresh' }) })).json()) as { id: string };
    for (const n of [1, 2, 3]) {
      const r = await fetch(`${platform.url}/channels/${fresh.id}/messages`, { method: 'POST', headers: { ...headers, 'content-type': 'text/plain' }, body: `early ${n}` });
      expect(r.status).toBe(202);
    }
    await page.goto(`${platform.url}/o/${orgId}/channels/${fresh.id}`);
    for (const n of [1, 2, 3]) await page.locator(`li.message[data-seq="${n}"]`).getByText(`early ${n}`).waitFor();
    expect(await page.locator('li.message').count()).toBe(3);

    // The dark colour scheme has its own contrast.
    await page.emulateMedia({ colorScheme: 'dark' });
    a11y.push(...(await audit(page)));
    await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Channels' }).click();
    await page.getByRole('link', { name: 'telemetry', exact: true }).click();
    await page.locator('figure.chart[data-points="9"]').waitFor();
    a11y.push(...(await audit(page)));
    // Publishing from the console as the signed-in user: the message comes back over the socket.
    await page.getByText('Publish a message').click();
    await page.getByLabel('Content type').selectOption('text/plain');
    await page.getByLabel('Payload').fill('hello from the console');
    await page.getByRole('button', { name: 'Publish', exact: true }).click();
    await page.getByText('Published as seq 6').waitFor();
    await page.locator('li.message[data-seq="6"]').getByText('hello from the console').waitFor();
    await page.screenshot({ path: join(shots, '4-live-dark.png'), fullPage: true });
    await page.emulateMedia({ colorScheme: 'light' });
    expect(a11y).toEqual([]);
  }, 60_000);
  it('offers a viewer only what a viewer may do: no new, edit, delete or rotate on devices, no new app; keys: issue, and revoke only its own', async () => {
    const org = /\/o\/([^/]+)\//.exec(page.url())![1]!;
    const owner = (JSON.parse((await page.evaluate(() => localStorage.getItem('edgeflux.session')))!) as { access: string }).access;
    const call = async (method: string, path: string, body: unknown, token?: string) => {
      const res = await fetch(`${platform.url}${path}`, { method, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
      expect(res.status, `${method} ${path}`).toBeLessThan(300);
      return res.json() as Promise<Record<string, unknown>>;
    };
    const viewer = `viewer-${Date.now()}@example.com`;
    Object.assign(people, { owner, viewer, ownerEmail: (JSON.parse((await page.evaluate(() => localStorage.getItem('edgeflux.session')))!) as { email: string }).email });
    await call('POST', '/users', { email: viewer, password: 'correct horse battery' });
    await call('POST', `/orgs/${org}/members`, { email: viewer, role: 'viewer' }, owner);
    await call('POST', `/orgs/${org}/keys`, { name: 'owners-key', scopes: ['devices:read'] }, owner);

    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByLabel('Email').fill(viewer);
    await page.getByLabel('Password').fill('correct horse battery');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('button', { name: 'Log out' }).waitFor(); // signed in (the session is stored)
    await page.goto(`${platform.url}/o/${org}/devices`);
    await page.getByRole('cell', { name: 'thermo-1', exact: true }).waitFor();
    for (const name of ['New device', 'Edit thermo-1', 'Delete thermo-1', 'Rotate key of thermo-1']) expect(await page.getByRole('button', { name }).count(), name).toBe(0);

    await page.getByRole('link', { name: 'Apps' }).click();
    await page.getByRole('cell', { name: 'grafana', exact: true }).waitFor();
    expect(await page.getByRole('button', { name: 'New app' }).count()).toBe(0);

    await page.getByRole('link', { name: 'Keys' }).click();
    await page.getByRole('cell', { name: 'owners-key', exact: true }).waitFor();
    expect(await page.getByRole('button', { name: 'Revoke owners-key' }).count()).toBe(0);
    await page.getByRole('button', { name: 'New API key' }).click();
    await page.getByRole('dialog').getByLabel('Name').fill('dashboard');
    await page.getByRole('dialog').getByLabel(/Scopes/).fill('devices:read');
    await page.getByRole('dialog').getByRole('button', { name: 'Create' }).click();
    await page.getByRole('button', { name: 'Done' }).click();
    await page.getByRole('button', { name: 'Revoke dashboard' }).waitFor(); // its own key

    // Connections: seen, not changed.
    await page.getByRole('link', { name: 'Connections' }).click();
    await page.getByRole('cell', { name: 'thermo-1', exact: true }).waitFor();
    expect(await page.getByRole('button', { name: 'Connect' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Disconnect thermo-1' }).count()).toBe(0);
    expect(await page.getByLabel('thermo-1 may publish').isDisabled()).toBe(true);
    // Members: no adding or role changes; leaving is its own to do.
    await page.getByRole('link', { name: 'Members' }).click();
    await page.getByRole('cell', { name: viewer, exact: true }).waitFor();
    expect(await page.getByRole('button', { name: 'Add member' }).count()).toBe(0);
    expect(await page.getByLabel(/^Role of /).count()).toBe(0);
    expect(await page.getByRole('button', { name: /^Remove / }).count()).toBe(1);
    await page.getByRole('button', { name: `Remove ${viewer}` }).waitFor();
    expect(consoleErrors).toEqual([]);
  }, 60_000);

  it('shows a viewer the channel views without publishing, payloads of any kind, and history errors alone', async () => {
    const org = /\/o\/([^/]+)\//.exec(page.url())![1]!;
    const owner = { authorization: `Bearer ${people.owner}` };
    const channels = (await (await fetch(`${platform.url}/orgs/${org}/channels?limit=100`, { headers: owner })).json()) as { items: { id: string; name: string }[] };
    const fresh = channels.items.find((c) => c.name === 'fresh')!.id;
    // A plain MQTT-style payload (text sent as octet-stream) and real binary: both kept in R2, not inline.
    for (const body of [new TextEncoder().encode('hello-mqtt'), new Uint8Array([0xff, 0x00, 0x10])]) {
      const r = await fetch(`${platform.url}/channels/${fresh}/messages/raw`, { method: 'POST', headers: { ...owner, 'content-type': 'application/octet-stream' }, body });
      expect(r.status).toBe(202);
    }

    // The channel list links to the live and history views for a viewer too.
    await page.getByRole('link', { name: 'Channels' }).click();
    await page.getByRole('link', { name: 'Live view of fresh' }).click();
    await page.locator('output.state.open').waitFor();
    expect(await page.getByText('Publish a message').count()).toBe(0); // a viewer may not publish
    const text = page.locator('li.message[data-seq="4"]');
    const binary = page.locator('li.message[data-seq="5"]');
    // Live (base64 on the socket), or from the query API after a drain (stored: fetched on request).
    const show = async (item: typeof text) => {
      if ((await item.locator('pre').count()) === 0) {
        const [download] = await Promise.all([page.waitForEvent('download'), item.getByRole('button', { name: /^Download the payload/ }).click()]);
        return download;
      }
      return null;
    };
    await text.waitFor();
    await show(text);
    await text.locator('pre[data-shown-as="utf-8"]').getByText('hello-mqtt').waitFor();
    await binary.waitFor();
    await show(binary);
    await binary.locator('pre[data-shown-as="hex"]').getByText('ff 00 10').waitFor();
    // After a reload (read back from the query API): stored, downloadable with the session's credential.
    await expect
      .poll(async () => ((await (await fetch(`${platform.url}/channels/${fresh}/messages?limit=10`, { headers: owner })).json()) as { items: { seq: number; payloadUrl?: string }[] }).items.filter((m) => m.payloadUrl).length)
      .toBe(2);
    await page.reload();
    await text.getByText(/10 bytes, stored/).waitFor();
    const download = (await show(text))!;
    expect(readFileSync((await download.path())!, 'utf8')).toBe('hello-mqtt');
    expect(download.suggestedFilename()).toBe('message-4.bin');
    await text.locator('pre[data-shown-as="utf-8"]').getByText('hello-mqtt').waitFor();

    // History: a query with no match says so; a failed query shows its error, not the last result.
    await page.getByRole('link', { name: 'History' }).click();
    await page.getByRole('button', { name: 'Run query' }).click();
    await page.locator('[data-result-count="5"]').waitFor();
    await page.getByLabel('Subtopic').fill('nothing/here');
    await page.getByRole('button', { name: 'Run query' }).click();
    await page.getByText('Nothing matches this query.').waitFor();
    await page.getByLabel('Subtopic').fill('');
    await page.getByLabel('SenML name').fill('temp'); // needs format=senml: a 400
    await page.getByRole('button', { name: 'Run query' }).click();
    await page.getByRole('alert').getByText(/format=senml/).waitFor();
    expect(await page.locator('[data-result-count]').count()).toBe(0);

    // A channel that does not exist is reported once; an org the user is not in offers nothing.
    await page.goto(`${platform.url}/o/${org}/channels/no-such-channel`);
    await page.getByRole('alert').first().waitFor();
    await page.waitForTimeout(1000); // the live view's own query and socket fail too: not reported again
    expect(await page.getByRole('alert').count()).toBe(1);
    await page.goto(`${platform.url}/o/no-such-org/devices`);
    await page.getByRole('alert').first().waitFor();
    expect(await page.getByRole('button', { name: 'New device' }).count()).toBe(0);
    expect(await page.getByLabel('Organization', { exact: true }).locator('option:checked').textContent()).toBe('Not one of your organizations');

    // A next= that leaves the origin is not followed (and does not throw).
    await page.goto(`${platform.url}/login?next=//evil.example/x`);
    await page.waitForURL((u) => u.pathname.endsWith('/devices'));
    expect(new URL(page.url()).origin).toBe(platform.url);

    // Narrow screens: the page does not scroll sideways (tables scroll in their own box).
    await page.setViewportSize({ width: 375, height: 800 });
    await page.goto(`${platform.url}/o/${org}/devices`);
    await page.getByRole('cell', { name: 'thermo-1', exact: true }).waitFor();
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    await page.screenshot({ path: join(shots, '5-narrow.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
    expect(consoleErrors).toEqual([]);
  }, 90_000);

  it('offers an admin no owner changes, follows a change of the own role, and leaves an org for home', async () => {
    const org = /\/o\/([^/]+)\//.exec(page.url())![1]!;
    const owner = { authorization: `Bearer ${people.owner}`, 'content-type': 'application/json' };
    const members = (await (await fetch(`${platform.url}/orgs/${org}/members?limit=100`, { headers: owner })).json()) as { items: { user_id: string; email: string }[] };
    const me = members.items.find((m) => m.email === people.viewer)!;
    expect((await fetch(`${platform.url}/orgs/${org}/members/${me.user_id}`, { method: 'PATCH', headers: owner, body: JSON.stringify({ role: 'admin' }) })).status).toBe(204);

    await page.goto(`${platform.url}/o/${org}/members`);
    await page.getByLabel(`Role of ${people.viewer}`).waitFor();
    expect(await page.getByLabel(`Role of ${people.ownerEmail}`).count()).toBe(0);
    expect(await page.getByRole('button', { name: `Remove ${people.ownerEmail}` }).count()).toBe(0);
    expect(await page.getByLabel('Role', { exact: true }).locator('option').allTextContents()).toEqual(['admin', 'member', 'viewer']);
    expect(await page.getByLabel('Organization', { exact: true }).locator('option:checked').textContent()).toMatch(/\(admin\)/);

    // Demoting oneself: the page and the org picker follow at once.
    await page.getByLabel(`Role of ${people.viewer}`).selectOption('member');
    await expect.poll(() => page.getByRole('button', { name: 'Add member' }).count()).toBe(0);
    await expect.poll(() => page.getByLabel('Organization', { exact: true }).locator('option:checked').textContent()).toMatch(/\(member\)/);

    // Leaving: home, which has no org left for this user.
    await page.getByRole('button', { name: `Remove ${people.viewer}` }).click(); // confirm() accepted
    await page.getByRole('heading', { name: 'Welcome' }).waitFor();
    expect(new URL(page.url()).pathname).toBe('/');
    expect(consoleErrors).toEqual([]);
  }, 60_000);
});
