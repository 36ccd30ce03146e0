/**
 * The web console with a keyboard only and as a screen reader meets it: Chromium driven by
 * playwright-core against the real platform (`npm start`'s launcher), every step a key press. Where
 * keyboard focus goes after signing in, a navigation, a new org, the skip link, a secret's Done and a delete; what each page is
 * called (its title).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { audit, logIn, openBrowser } from './browser';
import { startPlatform, type Platform } from './processes';

const PASSWORD = 'correct horse battery';

describe('web console with the keyboard only', () => {
  const state = mkdtempSync(join(tmpdir(), 'edgeflux-console-keyboard-'));
  let platform: Platform;
  let browser: Awaited<ReturnType<typeof openBrowser>>;
  let page: Page;
  const pageErrors: string[] = [];
  const a11y: string[] = [];
  const email = `keys-${Date.now()}@example.com`;
  let token = '';
  let org = '';

  const call = async <T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${platform.url}${path}`, { method, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: body === undefined ? undefined : JSON.stringify(body) });
    expect(res.status, `${method} ${path}`).toBeLessThan(300);
    return (await res.json()) as T;
  };
  /** The focused element, as a screen reader would name it: its role and accessible name. */
  const focused = () =>
    page.evaluate(() => {
      const el = document.activeElement;
      if (!el || el === document.body) return 'body';
      return `${el.tagName.toLowerCase()} ${el.getAttribute('aria-label') ?? el.textContent?.trim()}`;
    });
  /** Tabs forward until `name` has focus (at most 40 presses). */
  const tabTo = async (name: RegExp) => {
    for (let i = 0; i < 40 && !name.test(await focused()); i++) await page.keyboard.press('Tab');
    expect(await focused()).toMatch(name);
  };

  beforeAll(async () => {
    platform = await startPlatform({ EDGEFLUX_STATE_DIR: state });
    browser = await openBrowser();
    page = browser.page;
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.setDefaultTimeout(15_000);
    await call('POST', '/users', { email, password: PASSWORD });
    token = (await call<{ access_token: string }>('POST', '/tokens', { email, password: PASSWORD })).access_token;
    org = (await call<{ id: string }>('POST', '/orgs', { name: 'keyboard' })).id;
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await platform?.stop();
    rmSync(state, { recursive: true, force: true });
  });

  it('names each page in its title, and gives focus to its heading after signing in and after a navigation', async () => {
    await page.goto(`${platform.url}/login`);
    expect(await page.title()).toBe('Log in · Edgeflux console');
    await page.getByLabel('Email').focus();
    await page.keyboard.type(email);
    await page.keyboard.press('Tab');
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press('Enter');
    // Home goes on to the org's devices: the page that came has focus, not the top of the document.
    await page.getByRole('heading', { name: 'Devices', level: 1 }).waitFor();
    await expect.poll(focused).toBe('h1 Devices');
    expect(await page.title()).toBe('Devices · Edgeflux console');

    // A section link, followed with Enter.
    await tabTo(/^a Channels$/);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Channels', level: 1 }).waitFor();
    await expect.poll(focused).toBe('h1 Channels');
    expect(await page.title()).toBe('Channels · Edgeflux console');
    // The heading is focusable by script only: Tab goes on from it to the page's first control.
    expect(await page.getByRole('heading', { name: 'Channels', level: 1 }).getAttribute('tabindex')).toBe('-1');
    await page.keyboard.press('Tab');
    expect(await focused()).toBe('button New channel');

    // A channel's views name the channel and the view.
    const channel = (await call<{ id: string }>('POST', `/orgs/${org}/channels`, { name: 'boiler' })).id;
    await page.goto(`${platform.url}/o/${org}/channels/${channel}/history`);
    await expect.poll(() => page.title()).toBe('boiler history · Edgeflux console');
    a11y.push(...(await audit(page)));
  }, 60_000);

  it("ties a refused field's problem to it (focus, aria-invalid, aria-describedby), returns focus from a secret's Done to the button that made it, and after a delete to the page's heading", async () => {
    await logIn(page, platform.url, email, PASSWORD);
    await page.goto(`${platform.url}/o/${org}/devices`);
    await page.getByRole('heading', { name: 'Devices', level: 1 }).waitFor();
    await page.getByRole('button', { name: 'New device' }).focus();
    await page.keyboard.press('Enter');
    await page.keyboard.type('boiler-1');
    // Metadata that is not JSON: the problem is on the field, which takes focus and is described by it.
    await page.keyboard.press('Tab');
    await page.keyboard.type('{"room": lab}');
    await page.keyboard.press('Tab');
    expect(await focused()).toBe('button Create');
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'New device' });
    await expect.poll(() => dialog.getByRole('alert').textContent()).toBe('metadata is not valid JSON');
    const metadata = dialog.getByLabel('Metadata (JSON object)');
    await expect.poll(() => metadata.evaluate((el) => el === document.activeElement)).toBe(true);
    expect(await metadata.getAttribute('aria-invalid')).toBe('true');
    expect(await metadata.evaluate((el) => document.getElementById(el.getAttribute('aria-describedby')!)?.textContent)).toBe('metadata is not valid JSON');
    a11y.push(...(await audit(page)));
    await page.keyboard.press('ControlOrMeta+a');
    await page.keyboard.type('{"room": "cellar"}');
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.press('Enter');
    // The key shown once has focus; Copy, then Done.
    await page.locator('[data-secret]').waitFor();
    expect(await focused()).toMatch(/^code efd_/);
    await page.keyboard.press('Tab');
    expect(await focused()).toBe('button Copy');
    await page.keyboard.press('Tab');
    expect(await focused()).toBe('button Done');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('[data-secret]').count()).toBe(0);
    expect(await focused()).toBe('button New device');

    // Delete, confirmed: the row and its button are gone; focus is on the heading and the status says what happened.
    page.once('dialog', (d) => void d.accept());
    await tabTo(/^button Delete boiler-1$/);
    await page.keyboard.press('Enter');
    await page.getByRole('status').filter({ hasText: 'Deleted device “boiler-1”.' }).waitFor();
    await expect.poll(() => page.getByRole('button', { name: 'Delete boiler-1' }).count()).toBe(0);
    expect(await focused()).toBe('h1 Devices');
    a11y.push(...(await audit(page)));

    // The API's problem names the field (`errors[].path`): a scope it does not know.
    await page.goto(`${platform.url}/o/${org}/keys`);
    await page.getByRole('button', { name: 'New API key' }).click();
    const keyDialog = page.getByRole('dialog', { name: 'New API key' });
    await keyDialog.getByLabel('Name').fill('dashboard');
    await keyDialog.getByLabel(/^Scopes/).fill('devices:read bogus:thing');
    await keyDialog.getByRole('button', { name: 'Create' }).click();
    await expect.poll(() => keyDialog.getByRole('alert').textContent()).toMatch(/unknown action "bogus:thing".*\(422 validation_failed\)$/);
    const scopes = keyDialog.getByLabel(/^Scopes/);
    await expect.poll(() => scopes.evaluate((el) => el === document.activeElement)).toBe(true);
    expect(await scopes.getAttribute('aria-invalid')).toBe('true');
    expect(await keyDialog.getByLabel('Name').getAttribute('aria-invalid')).toBeNull();
    // Put right, the mark goes with the problem.
    await scopes.fill('devices:read');
    await keyDialog.getByRole('button', { name: 'Create' }).click();
    await page.locator('[data-secret]').waitFor();
  }, 60_000);

  it('says when Copy could not copy a secret (no clipboard: plain http from another machine), and leaves it selected for Ctrl+C', async () => {
    await logIn(page, platform.url, email, PASSWORD);
    // A page that is no secure context has no navigator.clipboard; this Chromium's old copy command is made to fail too.
    const tab = await browser.context.newPage();
    try {
      await tab.addInitScript(() => {
        Object.defineProperty(Navigator.prototype, 'clipboard', { get: () => undefined });
        document.execCommand = () => false;
      });
      await tab.goto(`${platform.url}/o/${org}/devices`);
      await tab.getByRole('button', { name: 'New device' }).click();
      await tab.getByRole('dialog', { name: 'New device' }).getByRole('textbox', { name: 'Name', exact: true }).fill('no-clipboard');
      await tab.getByRole('button', { name: 'Create' }).click();
      const key = await tab.locator('[data-secret]').textContent();
      await tab.getByRole('button', { name: 'Copy' }).click();
      await tab.getByText(/^Not copied: .* press Ctrl\+C/).waitFor();
      expect(await tab.getByRole('button', { name: 'Copied' }).count()).toBe(0);
      expect(await tab.evaluate(() => getSelection()?.toString())).toBe(key);
    } finally {
      await tab.close();
    }
  }, 60_000);

  it('draws the border of every text field and menu at 3:1 or more against its surroundings, light and dark (WCAG 1.4.11)', async () => {
    await logIn(page, platform.url, email, PASSWORD);
    await page.goto(`${platform.url}/o/${org}/devices`);
    await page.getByRole('button', { name: 'New device' }).click();
    await page.getByRole('dialog', { name: 'New device' }).waitFor();
    // The least contrast of each field's border with the field's own background and with the first opaque one around it.
    const worst = () =>
      page.evaluate(() => {
        const rgb = (c: string) => (c.match(/[\d.]+/g) ?? []).map(Number);
        const lum = (c: string) => {
          const [r, g, b] = rgb(c).map((v) => v / 255).map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
          return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
        };
        const ratio = (a: string, b: string) => (Math.max(lum(a), lum(b)) + 0.05) / (Math.min(lum(a), lum(b)) + 0.05);
        const opaque = (c: string) => rgb(c).length === 3 || rgb(c)[3] === 1;
        const around = (el: Element) => {
          for (let p = el.parentElement; p; p = p.parentElement) if (opaque(getComputedStyle(p).backgroundColor)) return getComputedStyle(p).backgroundColor;
          return 'rgb(255, 255, 255)';
        };
        const fields = Array.from(document.querySelectorAll('input:not([type=checkbox]):not([type=radio]), select, textarea')).filter((el) => (el as HTMLElement).offsetParent);
        return fields.map((el) => {
          const s = getComputedStyle(el);
          return { field: el.getAttribute('name') ?? el.getAttribute('aria-label') ?? el.tagName, ratio: Math.min(ratio(s.borderTopColor, s.backgroundColor), ratio(s.borderTopColor, around(el))) };
        });
      });
    for (const scheme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      const fields = await worst();
      expect(fields.length).toBeGreaterThan(3);
      for (const f of fields) expect(f.ratio, `${scheme}: ${f.field}`).toBeGreaterThanOrEqual(3);
    }
    await page.emulateMedia({ colorScheme: 'light' });
    await page.keyboard.press('Escape');
  }, 60_000);

  it('gives focus to the heading, with a status line, after a disconnect and after removing a member (their rows go)', async () => {
    const channel = (await call<{ id: string }>('POST', `/orgs/${org}/channels`, { name: 'a-links' })).id;
    const device = (await call<{ id: string }>('POST', `/orgs/${org}/devices`, { name: 'pump' })).id;
    await call('POST', `/orgs/${org}/connections`, { channel_ids: [channel], device_ids: [device] });
    const other = `other-${Date.now()}@example.com`;
    await call('POST', '/users', { email: other, password: PASSWORD });
    await call('POST', `/orgs/${org}/members`, { email: other, role: 'member' });
    await logIn(page, platform.url, email, PASSWORD);

    await page.goto(`${platform.url}/o/${org}/connections`);
    await page.getByRole('combobox', { name: 'Channel', exact: true }).getByRole('option', { name: 'a-links' }).waitFor({ state: 'attached' });
    await page.getByRole('combobox', { name: 'Channel', exact: true }).selectOption({ label: 'a-links' });
    await page.getByRole('button', { name: 'Disconnect pump' }).waitFor();
    page.once('dialog', (d) => void d.accept());
    await tabTo(/^button Disconnect pump$/);
    await page.keyboard.press('Enter');
    await page.getByRole('status').filter({ hasText: 'Disconnected pump from a-links.' }).waitFor();
    await expect.poll(() => page.getByRole('button', { name: 'Disconnect pump' }).count()).toBe(0);
    expect(await focused()).toBe('h1 Connections');

    await page.goto(`${platform.url}/o/${org}/members`);
    await page.getByRole('button', { name: `Remove ${other}` }).waitFor();
    page.once('dialog', (d) => void d.accept());
    await tabTo(new RegExp(`^button Remove ${other.replace(/[.]/g, '\\.')}$`));
    await page.keyboard.press('Enter');
    await page.getByRole('status').filter({ hasText: `Removed ${other}.` }).waitFor();
    await expect.poll(() => page.getByRole('button', { name: `Remove ${other}` }).count()).toBe(0);
    expect(await focused()).toBe('h1 Members');
    a11y.push(...(await audit(page)));
  }, 60_000);

  it('leaves focus where the user moved it while a delete, a disconnect or a removal was answered', async () => {
    await call('POST', `/orgs/${org}/devices`, { name: 'slow-gone' });
    const channel = (await call<{ id: string }>('POST', `/orgs/${org}/channels`, { name: 'b-slow' })).id;
    const pump = (await call<{ id: string }>('POST', `/orgs/${org}/devices`, { name: 'slow-pump' })).id;
    await call('POST', `/orgs/${org}/connections`, { channel_ids: [channel], device_ids: [pump] });
    const other = `slow-${Date.now()}@example.com`;
    await call('POST', '/users', { email: other, password: PASSWORD });
    await call('POST', `/orgs/${org}/members`, { email: other, role: 'member' });
    await logIn(page, platform.url, email, PASSWORD);
    // Every DELETE answered 2 s late, as on a slow link.
    let deletes = 0;
    await page.route('**/orgs/**', async (route) => {
      if (route.request().method() !== 'DELETE') return route.fallback();
      deletes++;
      await new Promise((r) => setTimeout(r, 2000));
      await route.fallback();
    });
    try {
      /** Clicks `button`, accepts its confirm, then types into `field` while the DELETE waits: focus and every character stay there. */
      const typeMeanwhile = async (button: string, field: ReturnType<Page['getByLabel']>, text: string, status: string | RegExp) => {
        const before = deletes;
        page.once('dialog', (d) => void d.accept());
        await page.getByRole('button', { name: button }).click();
        await expect.poll(() => deletes).toBe(before + 1);
        await field.focus();
        await page.keyboard.type(text.slice(0, 2));
        await page.getByRole('status').filter({ hasText: status }).waitFor();
        await page.keyboard.type(text.slice(2));
        expect(await focused()).not.toMatch(/^h1 /);
        expect(await field.evaluate((el) => el === document.activeElement)).toBe(true);
        expect(await field.inputValue()).toBe(text);
      };
      await page.goto(`${platform.url}/o/${org}/devices`);
      await typeMeanwhile('Delete slow-gone', page.getByLabel('Name contains'), 'boiler', 'Deleted device “slow-gone”.');
      // The next action clears that status: it would be old news.
      await page.getByLabel('Name contains').fill('');
      page.once('dialog', (d) => void d.accept());
      await page.getByRole('button', { name: 'Rotate key of slow-pump' }).click();
      await page.locator('[data-secret]').waitFor();
      expect(await page.getByRole('status').filter({ hasText: 'Deleted device' }).count()).toBe(0);
      await page.getByRole('button', { name: 'Done' }).click();

      await page.goto(`${platform.url}/o/${org}/connections`);
      await page.getByRole('combobox', { name: 'Channel', exact: true }).getByRole('option', { name: 'b-slow' }).waitFor({ state: 'attached' });
      await page.getByRole('combobox', { name: 'Channel', exact: true }).selectOption({ label: 'b-slow' });
      await typeMeanwhile('Disconnect slow-pump', page.getByLabel('Search channels by name'), 'b-slow', 'Disconnected slow-pump from b-slow.');

      await page.goto(`${platform.url}/o/${org}/members`);
      await typeMeanwhile(`Remove ${other}`, page.getByLabel('Filter by email'), 'slow', `Removed ${other}.`);
      // Adding a member clears it too.
      await page.getByLabel('Email of a registered user').fill(`nobody-${Date.now()}@example.com`);
      await page.getByRole('button', { name: 'Add member' }).click();
      await page.getByRole('alert').filter({ hasText: /404|not found|no user/i }).first().waitFor();
      expect(await page.getByRole('status').filter({ hasText: 'Removed' }).count()).toBe(0);
    } finally {
      await page.unroute('**/orgs/**');
    }
  }, 60_000);

  it('gives focus to a heading that comes late (a new user\'s Welcome, Connections with no channel), and after Back and Forward', async () => {
    const fresh = `fresh-${Date.now()}@example.com`;
    await call('POST', '/users', { email: fresh, password: PASSWORD });
    if (await page.getByRole('button', { name: 'Log out' }).count()) await page.getByRole('button', { name: 'Log out' }).click();
    await page.goto(`${platform.url}/login`);
    await page.getByLabel('Email').fill(fresh);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByLabel('Password').press('Enter');
    // Home shows "Loading…" while it looks for an org, then Welcome: its heading takes focus when it comes.
    await page.getByRole('heading', { name: 'Welcome', level: 1 }).waitFor();
    await expect.poll(focused).toBe('h1 Welcome');

    await page.getByLabel('Organization name').fill('empty');
    await page.getByRole('button', { name: 'Create organization' }).click();
    await page.getByRole('heading', { name: 'Devices', level: 1 }).waitFor();
    await expect.poll(focused).toBe('h1 Devices');
    // An org with no channel: Connections says to create one first, under its heading, which has focus.
    await page.getByRole('link', { name: 'Connections' }).click();
    await page.getByText('Create a channel first').waitFor();
    await expect.poll(focused).toBe('h1 Connections');

    // Back and Forward are navigations too.
    await page.goBack();
    await page.getByRole('heading', { name: 'Devices', level: 1 }).waitFor();
    await expect.poll(focused).toBe('h1 Devices');
    await page.goForward();
    await page.getByText('Create a channel first').waitFor();
    await expect.poll(focused).toBe('h1 Connections');
  }, 60_000);

  it('gives focus to the new org\'s heading after creating it from the header\'s dialog (the dialog gives focus back to its opener first)', async () => {
    await logIn(page, platform.url, email, PASSWORD);
    await page.goto(`${platform.url}/o/${org}/devices`);
    await page.getByRole('heading', { name: 'Devices', level: 1 }).waitFor();
    await page.getByRole('button', { name: 'New organization' }).focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'New organization' });
    await dialog.waitFor();
    expect(await dialog.getByLabel('Organization name').evaluate((el) => el === document.activeElement)).toBe(true);
    await page.keyboard.type('from-header');
    await page.keyboard.press('Enter');
    // The new org's Devices, its list loaded: its heading has focus, not New organization (the dialog's opener).
    await expect.poll(() => page.url()).not.toContain(org);
    await expect.poll(() => page.getByRole('combobox', { name: 'Organization' }).evaluate((el: HTMLSelectElement) => el.selectedOptions[0]?.textContent)).toBe('from-header (owner)');
    await page.locator('main table').waitFor();
    expect(await dialog.count()).toBe(0);
    await expect.poll(focused).toBe('h1 Devices');
  }, 60_000);

  it('keeps the page, and focus on the main content, when the skip link changes only the fragment (Back too); Back to another page starts it afresh', async () => {
    await logIn(page, platform.url, email, PASSWORD);
    await page.goto(`${platform.url}/o/${org}/devices`);
    await page.getByRole('heading', { name: 'Devices', level: 1 }).waitFor();
    const filter = page.getByLabel('Name contains');
    await filter.fill('pump');
    /** Whether `main` has focus, once the page has had time to remount and focus a heading (two frames and a task). */
    const mainFocused = () => page.evaluate(() => new Promise<boolean>((r) => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(() => r(document.activeElement?.id === 'main'), 50)))));

    await page.getByRole('link', { name: 'Skip to content' }).focus();
    await page.keyboard.press('Enter');
    await expect.poll(() => new URL(page.url()).hash).toBe('#main');
    expect(await mainFocused()).toBe(true);
    // The same page: what was typed in it is still there.
    expect(await filter.inputValue()).toBe('pump');
    // Back to the URL without the fragment: the same page still.
    await page.goBack();
    await expect.poll(() => new URL(page.url()).hash).toBe('');
    expect(await mainFocused()).toBe(true);
    expect(await filter.inputValue()).toBe('pump');

    // Another page and Back: a visit, the page afresh and its heading focused.
    await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Channels' }).click();
    await page.getByRole('heading', { name: 'Channels', level: 1 }).waitFor();
    await page.goBack();
    await page.getByRole('heading', { name: 'Devices', level: 1 }).waitFor();
    await expect.poll(focused).toBe('h1 Devices');
    expect(await filter.inputValue()).toBe('');
  }, 60_000);

  it("fits a channel's live view and a query's result in 320 px (a phone, or 1280 px at 400 % zoom): the page never scrolls sideways, a wide table in a box the keyboard scrolls", async () => {
    const channel = (await call<{ id: string }>('POST', `/orgs/${org}/channels`, { name: 'narrow' })).id;
    const res = await fetch(`${platform.url}/channels/${channel}/messages`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/senml+json' }, body: '[{"n":"boiler-outlet-temperature","u":"Cel","v":71.5}]' });
    expect(res.status).toBe(202);
    // Stored (the actor drains to D1 about once a second), so History's query finds it.
    await expect.poll(async () => (await call<{ items: unknown[] }>('GET', `/channels/${channel}/messages`)).items.length, { timeout: 10_000 }).toBe(1);
    await logIn(page, platform.url, email, PASSWORD);
    await page.setViewportSize({ width: 320, height: 640 });
    try {
      await page.goto(`${platform.url}/o/${org}/channels/${channel}`);
      await page.locator('tr[data-series="boiler-outlet-temperature"]').waitFor();
      await page.locator('.chart canvas').waitFor();
      // The chart as wide as its box, and the table of its values scrolling in its own box (which the keyboard reaches).
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(320);
      expect(await page.getByRole('region', { name: 'Latest values table' }).getAttribute('tabindex')).toBe('0');
      a11y.push(...(await audit(page)));
      // A query's result as a table (SenML records): wider than the screen, it scrolls in its own box, which
      // takes focus so that arrow keys scroll it (nothing in it is focusable).
      await page.getByRole('navigation', { name: 'Channel views' }).getByRole('link', { name: 'History' }).click();
      await page.getByLabel('Format').selectOption('senml');
      // The status that will say how many rows came is in the page, empty, before the first query: a live
      // region that arrives with its text is not read.
      await page.getByRole('button', { name: 'Run query' }).waitFor();
      const statuses = await page.locator('main [role="status"]').elementHandles();
      await page.getByRole('button', { name: 'Run query' }).click();
      const result = page.getByRole('region', { name: 'Query result' });
      await result.waitFor();
      expect(await Promise.all(statuses.map((h) => h.textContent()))).toContain('1 matching, showing 1');
      expect(await result.getAttribute('tabindex')).toBe('0');
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(320);
      await result.focus();
      await page.keyboard.press('ArrowRight');
      await expect.poll(() => result.evaluate((el) => el.scrollLeft)).toBeGreaterThan(0);
      a11y.push(...(await audit(page)));
    } finally {
      await page.setViewportSize({ width: 1280, height: 900 });
    }
    // Wide enough, the box is no region and no tab stop.
    await page.getByRole('cell', { name: 'boiler-outlet-temperature' }).waitFor();
    await expect.poll(() => page.locator('[role="region"][tabindex="0"]').count()).toBe(0);
    await page.setViewportSize({ width: 320, height: 640 });
    try {
      // Each scrolling box is a region named apart from the section around it (the page's h1) and from others.
      await page.getByRole('navigation', { name: 'Channel views' }).getByRole('link', { name: 'Settings' }).click();
      await page.locator('main .scroll[role="region"]').first().waitFor();
      a11y.push(...(await audit(page)));
      await call('POST', `/orgs/${org}/devices`, { name: 'narrow-sensor', metadata: { room: 'boiler room' } });
      await page.goto(`${platform.url}/o/${org}/devices`);
      await page.locator('main .scroll[role="region"]').first().waitFor();
      a11y.push(...(await audit(page)));
      expect(await page.locator('main .scroll[role="region"]').getAttribute('aria-label')).toBe('Devices table');
    } finally {
      await page.setViewportSize({ width: 1280, height: 900 });
    }
    expect(a11y).toEqual([]);
    expect(pageErrors).toEqual([]);
  }, 60_000);
});
