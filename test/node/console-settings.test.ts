/**
 * A channel's settings page in the web console (`GET|PATCH /orgs/{org}/channels/{id}/limits`):
 * Chromium driven by playwright-core against the real platform (`npm start`'s launcher). An admin
 * changes the default content type and the retention, a refused value shows the API's problem, a
 * member sees the values without the form; with the accessibility audit.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { audit, logIn as logInAs, openBrowser } from './browser';
import { root, startPlatform, type Platform } from './processes';

const shots = join(root, 'test-results/console');
const PASSWORD = 'correct horse battery';

describe("web console: a channel's settings", () => {
  const state = mkdtempSync(join(tmpdir(), 'edgeflux-console-settings-'));
  let platform: Platform;
  let browser: Awaited<ReturnType<typeof openBrowser>>;
  let page: Page;
  const pageErrors: string[] = [];
  const a11y: string[] = [];
  const stamp = Date.now();
  const people = { owner: `owner-${stamp}@example.com`, admin: `admin-${stamp}@example.com`, member: `member-${stamp}@example.com` };
  let ownerToken = '';
  let org = '';
  let channel = '';

  const call = async <T = Record<string, unknown>>(method: string, path: string, body?: unknown, token = ownerToken): Promise<T> => {
    const res = await fetch(`${platform.url}${path}`, { method, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: body === undefined ? undefined : JSON.stringify(body) });
    expect(res.status, `${method} ${path}`).toBeLessThan(300);
    return (await res.json()) as T;
  };
  const limits = () => call<{ defaultContentType: string; retentionDays: number; maxPayloadBytes: number }>('GET', `/orgs/${org}/channels/${channel}/limits`);
  const settingsUrl = () => `${platform.url}/o/${org}/channels/${channel}/settings`;
  const valueOf = (key: string) => page.locator(`tr[data-setting="${key}"] td`).first();

  const logIn = (email: string) => logInAs(page, platform.url, email, PASSWORD);

  beforeAll(async () => {
    mkdirSync(shots, { recursive: true });
    platform = await startPlatform({ EDGEFLUX_STATE_DIR: state });
    browser = await openBrowser();
    page = browser.page;
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.setDefaultTimeout(15_000);

    for (const email of Object.values(people)) await call('POST', '/users', { email, password: PASSWORD }, '');
    ownerToken = (await call<{ access_token: string }>('POST', '/tokens', { email: people.owner, password: PASSWORD }, '')).access_token;
    org = (await call<{ id: string }>('POST', '/orgs', { name: 'settings' })).id;
    await call('POST', `/orgs/${org}/members`, { email: people.admin, role: 'admin' });
    await call('POST', `/orgs/${org}/members`, { email: people.member, role: 'member' });
    channel = (await call<{ id: string }>('POST', `/orgs/${org}/channels`, { name: 'plant' })).id;
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await platform?.stop();
    rmSync(state, { recursive: true, force: true });
  });

  it('lets an admin make plain payloads SenML and keep 30 days, and the values persist', async () => {
    await logIn(people.admin);
    // From the channel's live view to its Settings tab.
    await page.goto(`${platform.url}/o/${org}/channels/${channel}`);
    await page.getByRole('navigation', { name: 'Channel views' }).getByRole('link', { name: 'Settings' }).click();
    await page.waitForURL(/\/settings$/);
    await page.getByRole('heading', { name: 'plant settings', level: 1 }).waitFor();
    // The defaults, as the API gives them.
    await expect.poll(() => valueOf('defaultContentType').textContent()).toBe('application/octet-stream');
    expect(await valueOf('retentionDays').textContent()).toBe('Forever');
    expect(await valueOf('maxPayloadBytes').textContent()).toBe('262,144 bytes (256 KiB)');
    expect(await valueOf('channelRate').textContent()).toBe('1,000 messages/s, bursts of 2,000');
    expect(await page.getByRole('radio', { name: 'Forever' }).isChecked()).toBe(true);
    a11y.push(...(await audit(page)));

    const form = page.getByRole('form', { name: 'Change settings' });
    await form.getByLabel('Default content type').selectOption('application/senml+json');
    await form.getByRole('radio', { name: 'For a number of days' }).check();
    await form.getByLabel(/^Days to keep/).fill('30');
    await form.getByLabel('Rate per publisher (messages per second)').fill('50');
    await form.getByRole('button', { name: 'Save settings' }).click();
    await page.getByRole('status').filter({ hasText: 'Saved' }).waitFor();
    // The table shows what the API answered.
    expect(await valueOf('defaultContentType').textContent()).toBe('application/senml+json');
    expect(await valueOf('retentionDays').textContent()).toBe('30 days');
    expect(await valueOf('publisherRate').textContent()).toBe('50 messages/s, bursts of 200');
    expect(await limits()).toMatchObject({ defaultContentType: 'application/senml+json', retentionDays: 30, publisherRate: { perSecond: 50, burst: 200 }, maxPayloadBytes: 262144 });
    a11y.push(...(await audit(page)));
    await page.screenshot({ path: join(shots, 'settings-saved.png'), fullPage: true });

    // A reload reads them back: in the table and in the form.
    await page.reload();
    await expect.poll(() => valueOf('defaultContentType').textContent()).toBe('application/senml+json');
    expect(await valueOf('retentionDays').textContent()).toBe('30 days');
    expect(await form.getByLabel('Default content type').inputValue()).toBe('application/senml+json');
    expect(await form.getByRole('radio', { name: 'For a number of days' }).isChecked()).toBe(true);
    expect(await form.getByLabel(/^Days to keep/).inputValue()).toBe('30');

    // And they apply: a payload published without a content type is stored as SenML.
    const res = await fetch(`${platform.url}/channels/${channel}/messages`, { method: 'POST', headers: { authorization: `Bearer ${ownerToken}` }, body: new TextEncoder().encode('[{"n":"temp","v":21}]') });
    expect(res.status).toBe(202);
    await expect
      .poll(async () => (await call<{ items: { name: string; value: number }[] }>('GET', `/channels/${channel}/messages?format=senml`)).items.map((r) => [r.name, r.value]), { timeout: 10_000 })
      .toEqual([['temp', 21]]);
  }, 90_000);

  it("shows the API's problem for a refused value next to the form, on the field it names, and changes nothing", async () => {
    const before = await limits();
    const form = page.getByRole('form', { name: 'Change settings' });
    await form.getByLabel('Default content type').selectOption('other');
    await form.getByLabel('Other content type').fill('not a type');
    await form.getByRole('button', { name: 'Save settings' }).click();
    const alert = form.getByRole('alert');
    await expect.poll(() => alert.textContent()).toMatch(/^defaultContentType must be a media type such as application\/senml\+json .*\(422 invalid_limits\)$/);
    const other = form.getByLabel('Other content type');
    expect(await other.getAttribute('aria-invalid')).toBe('true');
    await expect.poll(() => other.evaluate((el) => el === document.activeElement)).toBe(true);
    // The field is described by the problem, so a screen reader reads it with the field.
    expect(await other.evaluate((el) => document.getElementById(el.getAttribute('aria-describedby')!)?.textContent)).toContain('must be a media type');
    a11y.push(...(await audit(page)));
    await page.emulateMedia({ colorScheme: 'dark' });
    a11y.push(...(await audit(page)));
    await page.emulateMedia({ colorScheme: 'light' });
    await page.screenshot({ path: join(shots, 'settings-422.png'), fullPage: true });

    // Retention below an hour: the actor's own words, on the days box.
    await form.getByLabel('Default content type').selectOption('application/senml+json');
    await form.getByLabel(/^Days to keep/).fill('0.01');
    await form.getByRole('button', { name: 'Save settings' }).click();
    await expect.poll(() => alert.textContent()).toMatch(/^retentionDays must be 0 \(keep every message\) or at least an hour/);
    await expect.poll(() => form.getByLabel(/^Days to keep/).evaluate((el) => el === document.activeElement)).toBe(true);
    expect(await other.count()).toBe(0);

    expect(await limits()).toEqual(before);
    expect(await valueOf('retentionDays').textContent()).toBe('30 days');
    // Reset puts the form back to the values in effect and clears the problem.
    await form.getByRole('button', { name: 'Reset' }).click();
    expect(await form.getByLabel(/^Days to keep/).inputValue()).toBe('30');
    expect(await alert.count()).toBe(0);
  }, 60_000);

  it('shows a member the values and no form', async () => {
    await logIn(people.member);
    await page.goto(settingsUrl());
    await expect.poll(() => valueOf('defaultContentType').textContent()).toBe('application/senml+json');
    expect(await valueOf('retentionDays').textContent()).toBe('30 days');
    await page.getByText('Only owners and admins of the organization change these settings.').waitFor();
    expect(await page.getByRole('form', { name: 'Change settings' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Save settings' }).count()).toBe(0);
    expect(await page.getByRole('textbox').count()).toBe(0);
    // The API agrees: a member may read the limits and not change them.
    const member = (await call<{ access_token: string }>('POST', '/tokens', { email: people.member, password: PASSWORD }, '')).access_token;
    const res = await fetch(`${platform.url}/orgs/${org}/channels/${channel}/limits`, { method: 'PATCH', headers: { authorization: `Bearer ${member}`, 'content-type': 'application/json' }, body: '{"retentionDays":0}' });
    expect(res.status).toBe(403);
    a11y.push(...(await audit(page)));
    expect(a11y).toEqual([]);
    expect(pageErrors).toEqual([]);
  }, 60_000);
});
