/**
 * A channel's live and history views in the web console under load: Chromium driven by
 * playwright-core against the real platform (`npm start`'s launcher). Hundreds of messages a second
 * arrive in batches (one render per batch, not per message) into a bounded list; History's CSV is the
 * query and offset shown, read again: byte for byte the API's CSV of them.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logIn, openBrowser } from './browser';
import { startPlatform, type Platform } from './processes';

const PASSWORD = 'correct horse battery';
const FLOOD = 600;

describe("web console: a channel's live view and history under load", () => {
  const state = mkdtempSync(join(tmpdir(), 'edgeflux-console-channel-'));
  let platform: Platform;
  let browser: Awaited<ReturnType<typeof openBrowser>>;
  let page: Page;
  const pageErrors: string[] = [];
  const email = `channel-${Date.now()}@example.com`;
  let token = '';
  let org = '';
  let channel = '';
  let deviceKey = '';
  let published = 0;

  const call = async <T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${platform.url}${path}`, { method, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: body === undefined ? undefined : JSON.stringify(body) });
    expect(res.status, `${method} ${path}`).toBeLessThan(300);
    return (await res.json()) as T;
  };
  /** `count` SenML messages over HTTP, `parallel` at a time, values from `first` on. */
  const publish = async (count: number, first = 0, parallel = 16) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: parallel }, async () => {
        while (next < count) {
          const i = first + next++;
          const res = await fetch(`${platform.url}/channels/${channel}/messages/flood`, { method: 'POST', headers: { authorization: `Device ${deviceKey}`, 'content-type': 'application/senml+json' }, body: `[{"n":"flood","v":${i}}]` });
          expect(res.status).toBe(202);
          await res.arrayBuffer();
          published++;
        }
      }),
    );
  };

  beforeAll(async () => {
    platform = await startPlatform({ EDGEFLUX_STATE_DIR: state });
    browser = await openBrowser();
    page = browser.page;
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.setDefaultTimeout(15_000);
    await call('POST', '/users', { email, password: PASSWORD });
    token = (await call<{ access_token: string }>('POST', '/tokens', { email, password: PASSWORD })).access_token;
    org = (await call<{ id: string }>('POST', '/orgs', { name: 'load' })).id;
    channel = (await call<{ id: string }>('POST', `/orgs/${org}/channels`, { name: 'busy' })).id;
    const device = await call<{ id: string; key: string }>('POST', `/orgs/${org}/devices`, { name: 'flooder' });
    deviceKey = device.key;
    await call('POST', `/orgs/${org}/connections`, { channel_ids: [channel], device_ids: [device.id] });
    // The default rates (100/s per publisher) would refuse a flood from one device.
    await call('PATCH', `/orgs/${org}/channels/${channel}/limits`, { publisherRate: { perSecond: 10_000, burst: 10_000 }, channelRate: { perSecond: 10_000, burst: 10_000 } });
    await logIn(page, platform.url, email, PASSWORD);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await platform?.stop();
    rmSync(state, { recursive: true, force: true });
  });

  it('takes in a flood of messages in batches, keeping the newest 200 and 500 chart points', async () => {
    await page.goto(`${platform.url}/o/${org}/channels/${channel}`);
    await page.locator('output.state.open').waitFor();
    // Every render of the list is a batch of DOM changes: one per message would keep the page busy
    // (measured: ~2.8 ms of main-thread work per message, seconds of lag at a few hundred a second).
    await page.evaluate(() => {
      const w = window as unknown as { renders: number; told: string[] };
      w.renders = 0;
      new MutationObserver(() => w.renders++).observe(document.querySelector('ol.messages')!, { childList: true });
      // What a screen reader is given to read: every change inside a live region, as the region's text after it.
      w.told = [];
      const live = '[aria-live]:not([aria-live="off"]), [role="status"], [role="log"], [role="alert"], output';
      new MutationObserver((records) => {
        for (const r of records) {
          const region = (r.target instanceof Element ? r.target : r.target.parentElement)?.closest(live);
          if (region?.textContent && region.textContent !== w.told[w.told.length - 1]) w.told.push(region.textContent);
        }
      }).observe(document.body, { childList: true, characterData: true, subtree: true });
    });
    const told = () => page.evaluate(() => (window as unknown as { told: string[] }).told);
    const started = Date.now();
    // In flight 16 at a time, the flood's requests reach the channel out of order (seq order is not
    // value order); the last message goes alone after it, so the newest seq carries a known value.
    await publish(FLOOD - 1);
    await publish(1, FLOOD - 1);
    const top = () => page.locator('ol.messages > li').first().getAttribute('data-seq');
    await expect.poll(top, { timeout: 20_000 }).toBe(String(FLOOD));
    const renders = await page.evaluate(() => (window as unknown as { renders: number }).renders);
    expect(renders).toBeGreaterThan(0);
    expect(renders, 'renders of the message list').toBeLessThan(FLOOD / 4);
    // A screen reader hears a sentence every few seconds at most (ANNOUNCE_MS, 5 s), not each message:
    // the list is no live region, a status line says how many came.
    expect(await page.locator('ol.messages').evaluate((ol) => ol.closest('[aria-live], [role="status"], [role="log"]'))).toBeNull();
    const flood = await told();
    expect(flood.length, flood.join('\n')).toBeGreaterThan(0);
    expect(flood.length, flood.join('\n')).toBeLessThanOrEqual(2 + Math.ceil((Date.now() - started) / 5000));
    expect(flood.at(-1)).toMatch(/^\d+ new messages, newest #\d+$|^New message #/);
    // What came during the last quiet spell is told after it, up to the newest.
    await expect.poll(async () => (await told()).at(-1), { timeout: 12_000 }).toMatch(new RegExp(`(newest )?#${FLOOD}\\b`));
    // Bounded, newest first, in seq order; the chart keeps the last 500 points of the series.
    const seqs = (await page.locator('ol.messages > li').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-seq')))));
    expect(seqs).toEqual(Array.from({ length: 200 }, (_, i) => FLOOD - i));
    const row = page.locator('tr[data-series="flood"]');
    expect(await row.locator('td').first().textContent()).toBe(String(FLOOD - 1));
    expect(await row.locator('td').last().textContent()).toBe('500');
    // Still live after the flood: one more arrives on its own.
    await publish(1, FLOOD);
    await expect.poll(top).toBe(String(FLOOD + 1));
    // Alone, it is told in words: its seq, subtopic and payload.
    await expect.poll(async () => (await told()).at(-1), { timeout: 12_000 }).toBe(`New message #${FLOOD + 1} on flood: [{"n":"flood","v":${FLOOD}}]`);
    // Unticked, nothing more is told.
    await page.getByRole('checkbox', { name: 'Announce new messages' }).uncheck();
    const before = (await told()).length;
    await publish(1, FLOOD + 1);
    await expect.poll(top).toBe(String(FLOOD + 2));
    // Told, if at all, once the quiet spell (ANNOUNCE_MS, 5 s) after the last telling is over: watched
    // past it, the status line says nothing more.
    for (const until = Date.now() + 5000 + 1500; Date.now() < until; await page.waitForTimeout(250)) expect(await told()).toHaveLength(before);
    expect(await page.locator('[data-news]').textContent()).toBe('');
    expect(pageErrors).toEqual([]);
  }, 90_000);

  it("draws the stored messages' chart when its code loads after them (the live view's first read)", async () => {
    if (!published) await publish(3); // run alone (-t)
    // The chart's chunk held back until the live view has taken the channel's last 50 messages.
    await page.route('**/assets/chart-*.js', async (route) => {
      await new Promise((ok) => setTimeout(ok, 1500));
      await route.continue();
    });
    try {
      await page.goto(`${platform.url}/o/${org}/channels/${channel}`);
      await page.locator('ol.messages > li').first().waitFor();
      await page.locator('.chart canvas').waitFor({ timeout: 10_000 });
      // What the chart was given to draw, not what the page's SeriesSet holds.
      expect(Number(await page.locator('figure.chart .plot').getAttribute('data-drawn'))).toBeGreaterThan(0);
    } finally {
      await page.unroute('**/assets/chart-*.js');
    }
  }, 30_000);

  it("downloads as CSV the history query at the offset shown: the API's CSV of that query and offset", async () => {
    const api = async (q: string) => (await fetch(`${platform.url}/channels/${channel}/messages?${q}`, { headers: { authorization: `Bearer ${token}`, accept: 'text/csv' } })).text();
    let filename = '';
    const download = async () => {
      const [file] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download CSV' }).click()]);
      filename = file.suggestedFilename();
      return readFileSync((await file.path())!, 'utf8');
    };
    // Every message stored (D1 is written about a second after the actor takes a message).
    await expect.poll(async () => (await call<{ total: number }>('GET', `/channels/${channel}/messages?limit=1`)).total, { timeout: 20_000 }).toBe(published);
    await page.goto(`${platform.url}/o/${org}/channels/${channel}/history`);
    await page.getByLabel('Format').selectOption('senml');
    await page.getByLabel('Limit').fill('50');
    await page.getByRole('button', { name: 'Run query' }).click();
    await expect.poll(() => page.locator('[data-result-count]').textContent()).toBe(`${published} matching, showing 50`);
    const first = await api('format=senml&order=desc&limit=50');
    expect(await download()).toBe(first);
    expect(filename).toMatch(new RegExp(`^channel-${channel}-\\d{4}-[\\d-T]+Z\\.csv$`));
    await page.getByRole('button', { name: /next/i }).click();
    // The second page's first row: seq published − 50 (values arrived out of order, seqs did not),
    // as the API's JSON of that page has it.
    const seqColumn = (await page.locator('table.results thead th').allTextContents()).indexOf('seq');
    expect(seqColumn).toBeGreaterThanOrEqual(0);
    const secondJson = await call<{ items: { seq: number }[] }>('GET', `/channels/${channel}/messages?format=senml&order=desc&limit=50&offset=50`);
    expect(secondJson.items[0]!.seq).toBe(published - 50);
    await expect.poll(() => page.locator('table.results tbody tr').first().locator('td').nth(seqColumn).textContent()).toBe(String(published - 50));
    const second = await api('format=senml&order=desc&limit=50&offset=50');
    expect(second).not.toBe(first);
    expect(await download()).toBe(second);
    expect(filename).toMatch(new RegExp(`^channel-${channel}-offset-50-\\d{4}-`));
    // Another query typed but not run: its first page, as before.
    await page.getByLabel('Limit').fill('10');
    expect(await download()).toBe(await api('format=senml&order=desc&limit=10'));
    expect(pageErrors).toEqual([]);
  }, 60_000);

  it('downloads every page of the typed query as one CSV file (Download all): header once, every stored message, as the API pages it by cursor', async () => {
    // Past one page of 1000, so the download follows a cursor.
    await publish(1100 - published, published + 10_000);
    await expect.poll(async () => (await call<{ total: number }>('GET', `/channels/${channel}/messages?limit=1`)).total, { timeout: 30_000 }).toBe(published);
    await page.goto(`${platform.url}/o/${org}/channels/${channel}/history`);
    await page.getByLabel('Limit').fill('10'); // the page size shown; Download all reads 1000 a page whatever it says
    const [file] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download all (CSV)' }).click()]);
    expect(file.suggestedFilename()).toMatch(new RegExp(`^channel-${channel}-all-\\d{4}-`));
    const got = readFileSync((await file.path())!, 'utf8');
    // The API's own pages, followed by their Link header.
    let expected = '';
    let url: string | undefined = `${platform.url}/channels/${channel}/messages?order=desc&limit=1000&total=false`;
    for (let pages = 0; url; pages++) {
      const res: Response = await fetch(url, { headers: { authorization: `Bearer ${token}`, accept: 'text/csv' } });
      const text = await res.text();
      expected += pages === 0 ? text : text.slice(text.indexOf('\r\n') + 2);
      url = /<([^>]*)>;\s*rel="next"/.exec(res.headers.get('link') ?? '')?.[1];
      if (!url) expect(pages).toBe(1); // two pages
    }
    expect(got).toBe(expected);
    const rows = got.split('\r\n').filter((l) => l !== '');
    expect(rows).toHaveLength(published + 1);
    expect(new Set(rows.slice(1).map((r) => r.split(',')[0])).size).toBe(published);
    // An aggregation pages by offset: refused with a reason, nothing downloaded.
    await page.getByLabel('Format').selectOption('senml');
    await page.getByLabel('Aggregation').selectOption('count');
    await page.getByRole('button', { name: 'Download all (CSV)' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('an aggregation pages by offset');
    expect(pageErrors).toEqual([]);
  }, 90_000);
});
