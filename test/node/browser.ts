/** Debian's Chromium driven by playwright-core, and the axe-core audit, for the console's end-to-end tests. */
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const axeScript = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

/** A fresh headless profile; `close` ends the browser and deletes the profile. */
export async function openBrowser(): Promise<{ context: BrowserContext; page: Page; close: () => Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), 'edgeflux-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: ARGS, headless: true, viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Logs in through the console's login page as `email` (logging out first if signed in) and waits until signed in. */
export async function logIn(page: Page, base: string, email: string, password: string): Promise<void> {
  if (await page.getByRole('button', { name: 'Log out' }).count()) await page.getByRole('button', { name: 'Log out' }).click();
  await page.goto(`${base}/login`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('button', { name: 'Log out' }).waitFor();
}

interface AxeViolation {
  id: string;
  impact: string | null;
  nodes: { target: string[] }[];
}
/**
 * axe-core's WCAG 2.x A/AA rules on the current page; serious and critical findings fail the test, and so
 * do landmarks of one role sharing a name (`landmark-unique`, moderate: a table's scrolling region named
 * as the section around it, two regions a screen reader's landmark list cannot tell apart).
 */
export async function audit(page: Page): Promise<string[]> {
  if (!(await page.evaluate(() => 'axe' in window))) await page.addScriptTag({ path: axeScript });
  const violations = await page.evaluate(
    () => (window as unknown as { axe: { run: (ctx: Document, o: object) => Promise<{ violations: AxeViolation[] }> } }).axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] }).then((r) => r.violations),
  );
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical' || v.id === 'landmark-unique').map((v) => `${page.url()} ${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}
