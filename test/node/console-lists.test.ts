/**
 * The web console with more of everything than one API page holds (100): orgs, members, channels,
 * devices, connections, apps and API keys made through the API, then reached and used from Chromium against the
 * real platform (`npm start`'s launcher).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { audit, logIn, openBrowser } from './browser';
import { root, startPlatform, type Platform } from './processes';

const shots = join(root, 'test-results/console');

const PASSWORD = 'correct horse battery';
const pad = (n: number) => String(n).padStart(3, '0');
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Runs `f` over `items`, `width` at a time (the platform shares two cores with everything else). */
async function inBatches<T, R>(items: T[], width: number, f: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += width) out.push(...(await Promise.all(items.slice(i, i + width).map(f))));
  return out;
}

describe('web console with lists longer than a page of the API', () => {
  const state = mkdtempSync(join(tmpdir(), 'edgeflux-console-lists-'));
  let platform: Platform;
  let browser: Awaited<ReturnType<typeof openBrowser>>;
  let page: Page;
  const pageErrors: string[] = [];
  const a11y: string[] = [];
  const email = `lists-${Date.now()}@example.com`;
  let token = '';
  let big = '';
  const orgIds = new Map<string, string>(); // name → id
  const deviceIds = new Map<string, string>();
  const channelIds = new Map<string, string>();

  const call = async <T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${platform.url}${path}`, { method, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: body === undefined ? undefined : JSON.stringify(body) });
    expect(res.status, `${method} ${path}`).toBeLessThan(300);
    return (res.status === 204 ? undefined : await res.json()) as T;
  };
  const ids = (items: { id: string; name: string }[], into: Map<string, string>) => items.forEach((i) => into.set(i.name, i.id));

  beforeAll(async () => {
    mkdirSync(shots, { recursive: true });
    platform = await startPlatform({ EDGEFLUX_STATE_DIR: state });
    browser = await openBrowser();
    page = browser.page;
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('dialog', (d) => void d.accept()); // confirm() before a removal
    page.setDefaultTimeout(15_000);

    await call('POST', '/users', { email, password: PASSWORD });
    token = (await call<{ access_token: string }>('POST', '/tokens', { email, password: PASSWORD })).access_token;
    big = (await call<{ id: string }>('POST', '/orgs', { name: 'big' })).id;
    // 150 devices, 120 channels; 140 of the devices connected to chan-001.
    for (const [from, to] of [[1, 100], [101, 150]] as const) ids((await call<{ items: { id: string; name: string }[] }>('POST', `/orgs/${big}/devices/bulk`, { devices: range(from, to).map((n) => ({ name: `dev-${pad(n)}` })) })).items, deviceIds);
    for (const [from, to] of [[1, 100], [101, 120]] as const) ids((await call<{ items: { id: string; name: string }[] }>('POST', `/orgs/${big}/channels/bulk`, { channels: range(from, to).map((n) => ({ name: `chan-${pad(n)}` })) })).items, channelIds);
    await call('POST', `/orgs/${big}/connections`, { channel_ids: [channelIds.get('chan-001')], device_ids: range(1, 140).map((n) => deviceIds.get(`dev-${pad(n)}`)) });
    // 130 more orgs, and 120 more members of the big one.
    ids(await inBatches(range(1, 130), 10, (n) => call<{ id: string; name: string }>('POST', '/orgs', { name: `org-${pad(n)}` })), orgIds);
    await inBatches(range(1, 120), 6, async (n) => {
      const who = `member-${pad(n)}-${email}`;
      await call('POST', '/users', { email: who, password: PASSWORD });
      await call('POST', `/orgs/${big}/members`, { email: who, role: 'viewer' });
    });

    // 110 apps and 110 API keys in the big org.
    await inBatches(range(1, 110), 10, (n) => call('POST', `/orgs/${big}/apps`, { name: `app-${pad(n)}`, scopes: ['orgs:read'] }));
    await inBatches(range(1, 110), 10, (n) => call('POST', `/orgs/${big}/keys`, { name: `key-${pad(n)}`, scopes: ['orgs:read'] }));

    await logIn(page, platform.url, email, PASSWORD);
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await platform?.stop();
    rmSync(state, { recursive: true, force: true });
  });

  it('knows the role in an org past the first 100, offers every org in the switcher, and goes home to it', async () => {
    const late = orgIds.get('org-120')!;
    // The premise: org-120 is not on the first page of the user's orgs.
    const first = await call<{ total: number; items: { id: string }[] }>('GET', '/orgs?limit=100');
    expect(first.total).toBe(131);
    expect(first.items.map((o) => o.id)).not.toContain(late);

    await page.goto(`${platform.url}/o/${late}/devices`);
    await page.getByRole('button', { name: 'New device' }).waitFor(); // the owner's role is known here
    await page.getByText('No devices yet').waitFor();
    const switcher = page.getByLabel('Organization', { exact: true });
    await expect.poll(() => switcher.locator('option:checked').textContent()).toBe('org-120 (owner)');
    await expect.poll(() => switcher.locator('option').count()).toBe(131);

    // Another one past the first page, picked in the switcher: its page, with what the owner may do.
    await switcher.selectOption({ label: 'org-130 (owner)' });
    await page.waitForURL(`${platform.url}/o/${orgIds.get('org-130')}/devices`);
    await page.getByRole('button', { name: 'New device' }).waitFor();
    await page.getByRole('link', { name: 'Members' }).click();
    await page.getByRole('button', { name: 'Add member' }).waitFor();

    // Home goes back to the last org used, however far down the list it is.
    await page.goto(`${platform.url}/o/${late}/channels`);
    await page.getByRole('button', { name: 'New channel' }).waitFor();
    await page.goto(`${platform.url}/`);
    await page.waitForURL(`${platform.url}/o/${late}/devices`);
    a11y.push(...(await audit(page)));
    expect(pageErrors).toEqual([]);
  }, 60_000);

  it('finds any channel and device to connect by name, and pages and filters the devices connected', async () => {
    await page.goto(`${platform.url}/o/${big}/connections`);
    // chan-001 first, its 140 connected devices 20 at a time.
    await page.getByText('1–20 of 140').waitFor();
    await page.getByText('Listing 100 of 120 channels: search by name to find the others.').waitFor();
    await page.getByText('Listing 100 of 150 devices: search by name to find the others.').waitFor();
    for (const from of [21, 41, 61, 81, 101, 121]) {
      await page.getByRole('button', { name: 'Next' }).click();
      await page.getByText(`${from}–${Math.min(from + 19, 140)} of 140`).waitFor();
    }
    await page.getByRole('cell', { name: 'dev-140', exact: true }).waitFor();

    // A device past the first 100, found by the API and changed: publish taken away.
    await page.getByLabel('Filter connected devices by name').fill('dev-130');
    await page.getByText('1 item').waitFor();
    await page.getByRole('checkbox', { name: 'dev-130 may publish' }).click();
    const typesOn = async (channel: string) =>
      (await call<{ items: { name: string; types: string[] }[] }>('GET', `/orgs/${big}/channels/${channelIds.get(channel)}/devices?limit=100`)).items.map((d) => `${d.name}:${d.types.join('+')}`);
    await expect.poll(async () => (await call<{ items: { types: string[] }[] }>('GET', `/orgs/${big}/channels/${channelIds.get('chan-001')}/devices?name=dev-130`)).items[0]?.types).toEqual(['subscribe']);
    await page.locator('table[aria-busy="false"]').waitFor();
    expect(await page.getByRole('checkbox', { name: 'dev-130 may publish' }).isChecked()).toBe(false);

    // chan-110 (past the first 100 channels), with dev-145 and dev-003 (found by two searches) connected to it.
    await page.getByLabel('Search channels by name').fill('chan-110');
    await expect.poll(() => page.getByLabel('Channel', { exact: true }).locator('option').allTextContents()).toEqual(['chan-001', 'chan-110']);
    await page.getByLabel('Channel', { exact: true }).selectOption({ label: 'chan-110' });
    await page.getByText('No connected devices match the filter.').waitFor();
    await page.getByLabel('Filter connected devices by name').fill('');
    await page.getByText('No devices connected to this channel yet.').waitFor();
    const picker = page.getByLabel('Devices to connect');
    await page.getByLabel('Search devices by name').fill('dev-145');
    await expect.poll(() => picker.locator('option').allTextContents()).toEqual(['dev-145']);
    await picker.selectOption({ label: 'dev-145' });
    await page.getByLabel('Search devices by name').fill('dev-003');
    await expect.poll(() => picker.locator('option').allTextContents()).toEqual(['dev-003']);
    await picker.selectOption({ label: 'dev-003' });
    await page.getByText('To connect: dev-145, dev-003').waitFor();
    a11y.push(...(await audit(page)));
    await page.screenshot({ path: join(shots, '6-connections-search.png'), fullPage: true });
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await page.getByText('Connected dev-145, dev-003 to chan-110.').waitFor();
    await page.getByRole('checkbox', { name: 'dev-145 may subscribe' }).waitFor();
    await page.getByText('2 items').waitFor();
    expect((await typesOn('chan-110')).sort()).toEqual(['dev-003:publish+subscribe', 'dev-145:publish+subscribe']);
    expect(await page.getByText('To connect:').count()).toBe(0); // the choice is spent

    // A disconnect that empties the last page steps back to the one before.
    await page.getByLabel('Search channels by name').fill('chan-001');
    await expect.poll(() => page.getByLabel('Channel', { exact: true }).locator('option').allTextContents()).toEqual(['chan-110', 'chan-001']);
    await page.getByLabel('Channel', { exact: true }).selectOption({ label: 'chan-001' });
    await page.getByText('1–20 of 140').waitFor();
    await page.getByLabel('Filter connected devices by name').fill('dev-1');
    await page.getByText('1–20 of 41').waitFor(); // dev-100…140
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByText('21–40 of 41').waitFor();
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByText('41–41 of 41').waitFor();
    await page.getByRole('button', { name: 'Disconnect dev-140' }).click();
    await page.getByText('21–40 of 40').waitFor();
    expect(await page.getByText('No connected devices match the filter.').count()).toBe(0);
    expect((await call<{ total: number }>('GET', `/orgs/${big}/channels/${channelIds.get('chan-001')}/devices`)).total).toBe(139);
    a11y.push(...(await audit(page)));
    expect(pageErrors).toEqual([]);
  }, 120_000);

  it('pages the members and finds one past the first 100 by email, to change or remove', async () => {
    const late = `member-115-${email}`;
    const first = await call<{ total: number; items: { email: string }[] }>('GET', `/orgs/${big}/members?limit=100`);
    expect(first.total).toBe(121);
    expect(first.items.map((m) => m.email)).not.toContain(late);

    await page.goto(`${platform.url}/o/${big}/members`);
    await page.getByText('1–20 of 121').waitFor();
    await page.screenshot({ path: join(shots, '7-members-paged.png'), fullPage: true });
    for (const from of [21, 41, 61, 81, 101, 121]) {
      await page.getByRole('button', { name: 'Next' }).click();
      await page.getByText(`${from}–${Math.min(from + 19, 121)} of 121`).waitFor();
    }

    await page.getByLabel('Filter by email').fill('MEMBER-115');
    await page.getByText('1 item').waitFor();
    await page.getByLabel(`Role of ${late}`).selectOption('admin');
    await expect.poll(async () => (await call<{ items: { role: string }[] }>('GET', `/orgs/${big}/members?email=member-115`)).items.map((m) => m.role)).toEqual(['admin']);
    await page.getByLabel('Filter by email').fill('member-118');
    await page.getByText('1 item').waitFor();
    await page.getByRole('button', { name: `Remove member-118-${email}` }).click();
    await page.getByText('No members match the filter.').waitFor();
    expect((await call<{ total: number }>('GET', `/orgs/${big}/members`)).total).toBe(120);
    a11y.push(...(await audit(page)));
    a11y.push(...(await audit(page)));
    expect(pageErrors).toEqual([]);
  }, 60_000);

  it('pages the apps and API keys and finds one past the first 100 by name (the API filters), to delete or revoke', async () => {
    const names = async (path: string) => (await call<{ total: number; items: { name: string }[] }>('GET', path)).items.map((i) => i.name);
    // The premise: neither is on the first page of the API's largest.
    expect(await names(`/orgs/${big}/apps?limit=100`)).not.toContain('app-105');
    expect(await names(`/orgs/${big}/keys?limit=100`)).not.toContain('key-107');

    await page.goto(`${platform.url}/o/${big}/apps`);
    await page.getByText('1–20 of 110').waitFor();
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByText('21–40 of 110').waitFor();
    await page.getByLabel('Filter by name').fill('APP-1');
    await page.getByText('11 items').waitFor(); // app-100…110: one page, from the first again
    await page.getByRole('cell', { name: 'app-110', exact: true }).waitFor();
    await page.getByLabel('Filter by name').fill('APP-105');
    await page.getByText('1 item').waitFor();
    await page.getByRole('cell', { name: 'app-105', exact: true }).waitFor();
    a11y.push(...(await audit(page)));
    await page.getByRole('button', { name: 'Delete app-105' }).click();
    await page.getByText('No apps match the filter.').waitFor();
    expect(await names(`/orgs/${big}/apps?name=app-105`)).toEqual([]);

    await page.getByRole('link', { name: 'Keys' }).click();
    await page.getByText('1–20 of 110').waitFor();
    await page.getByLabel('Filter by name').fill('key-107');
    await page.getByText('1 item').waitFor();
    await page.getByRole('button', { name: 'Revoke key-107' }).click();
    await page.getByRole('cell', { name: /^revoked / }).waitFor();
    const revoked = await call<{ items: { name: string; revoked_at: number | null }[] }>('GET', `/orgs/${big}/keys?name=key-107`);
    expect(revoked.items).toMatchObject([{ name: 'key-107', revoked_at: expect.any(Number) }]);
    a11y.push(...(await audit(page)));
    expect(a11y).toEqual([]);
    expect(pageErrors).toEqual([]);
  }, 60_000);

  it('sorts the devices by name from the column header, both ways, from the first page; the API reads the same order', async () => {
    await page.goto(`${platform.url}/o/${big}/devices`);
    await page.getByText('1–20 of 150').waitFor();
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByText('21–40 of 150').waitFor();
    const header = page.getByRole('columnheader', { name: /^Name/ });
    const firstName = () => page.locator('table tbody tr').first().locator('td').first().textContent();
    await header.getByRole('button').click();
    await page.getByText('1–20 of 150').waitFor(); // a new sort starts from the first page
    await expect.poll(() => header.getAttribute('aria-sort')).toBe('ascending');
    await expect.poll(firstName).toBe('dev-001');
    await header.getByRole('button').click();
    await expect.poll(() => header.getAttribute('aria-sort')).toBe('descending');
    await expect.poll(firstName).toBe('dev-150');
    const api = await call<{ items: { name: string }[] }>('GET', `/orgs/${big}/devices?sort=name&order=desc&limit=20`);
    expect(await page.locator('table tbody tr td:first-child').allTextContents()).toEqual(api.items.map((d) => d.name));
    // A third click goes back to the creation order, with no sort marked.
    await header.getByRole('button').click();
    await expect.poll(() => header.getAttribute('aria-sort')).toBeNull();
    a11y.push(...(await audit(page)));
    expect(a11y).toEqual([]);
    expect(pageErrors).toEqual([]);
  }, 60_000);
});
