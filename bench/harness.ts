/**
 * A small, honest measuring kit: every figure is the median of several runs, each after a
 * warm-up. Results print as Markdown tables and are written as JSON under bench/results/.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { resolve } from 'node:path';

export interface Row {
  scenario: string;
  subject: string;
  /** Column name → median value; the column name carries the unit ("msgs/s", "p99 ms"). */
  figures: Record<string, number>;
  /** The ratio to the peers, e.g. "0.61× Mosquitto · 1.4× Aedes"; "peer" on the peers' rows. */
  vs?: string;
  /** How many runs each median is taken over. */
  runs: number;
  /** Every run's value of each figure (JSON only). */
  samples?: Record<string, number[]>;
}

export const median = (xs: number[]): number => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** One row from several runs' figures: each figure the median of its runs. */
export function medianRow(scenario: string, subject: string, runs: Record<string, number>[]): Row {
  const samples: Record<string, number[]> = {};
  for (const r of runs) for (const [k, v] of Object.entries(r)) (samples[k] ??= []).push(v);
  const figures = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
  return { scenario, subject, figures, runs: runs.length, samples };
}

/** Puts "x× peer" beside the Edgeflux rows of each scenario, comparing figure `key`. */
export function ratios(rows: Row[], key: string, subject = 'Edgeflux'): Row[] {
  const peers = rows.filter((r) => r.subject !== subject);
  for (const r of rows) {
    if (r.subject !== subject) r.vs = 'peer';
    else {
      const ratio = (p: Row) => r.figures[key]! / p.figures[key]!;
      r.vs = peers.map((p) => (Number.isFinite(ratio(p)) && ratio(p) > 0 ? `${ratio(p).toFixed(2)}× ${p.subject}` : `– ${p.subject}`)).join(' · ') + (key === Object.keys(r.figures)[0] ? '' : ` (${key})`);
    }
  }
  return rows;
}

/** Calls fn repeatedly for about `ms` milliseconds; returns units per second (units = work per call). */
export function throughput(fn: () => void, unitsPerCall: number, ms: number): number {
  let calls = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    for (let i = 0; i < 64; i++) fn();
    calls += 64;
    now = performance.now();
  }
  return (calls * unitsPerCall) / ((now - start) / 1000);
}

/** Median units/s over `runs` runs after one warm-up run. */
export function measure(fn: () => void, unitsPerCall: number, opts: { ms: number; runs: number }): { value: number; runs: number[] } {
  throughput(fn, unitsPerCall, Math.min(opts.ms, 200));
  const runs: number[] = [];
  for (let i = 0; i < opts.runs; i++) runs.push(throughput(fn, unitsPerCall, opts.ms));
  return { value: median(runs), runs };
}

const began = Date.now();
/** Progress on stderr, so stdout stays the Markdown report. */
export const progress = (what: string) => void process.stderr.write(`[bench ${((Date.now() - began) / 1000).toFixed(0).padStart(4)} s] ${what}\n`);

/** `p`, or a rejection naming `what` once `ms` have passed. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, fail) => (timer = setTimeout(() => fail(new Error(`${what}: no answer within ${(ms / 1000).toFixed(0)} s`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Waits until `received()` reaches `expected`, or stops moving for 1 s, or `maxMs` passes. */
export async function settle(received: () => number, expected: number, maxMs = 20_000): Promise<void> {
  for (let seen = -1, quiet = 0, t = 0; received() < expected && quiet < 10 && t < maxMs / 100; t++) {
    await new Promise((r) => setTimeout(r, 100));
    quiet = received() === seen ? quiet + 1 : 0;
    seen = received();
  }
}

const fmt = (n: number | undefined): string => {
  if (n === undefined || Number.isNaN(n)) return '–';
  const a = Math.abs(n);
  return a >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : a >= 1e4 ? `${(n / 1e3).toFixed(1)} k` : a >= 100 ? n.toFixed(0) : a >= 10 ? n.toFixed(1) : n.toFixed(2);
};

/** One Markdown table per scenario; columns are the figures that scenario's rows have. */
export function table(rows: Row[]): string {
  const order = (s: string) => Number.parseInt(s, 10) || 0;
  const scenarios = [...new Set(rows.map((r) => r.scenario))].sort((a, b) => order(a) - order(b));
  return scenarios
    .map((s) => {
      const rs = rows.filter((r) => r.scenario === s);
      const cols = [...new Set(rs.flatMap((r) => Object.keys(r.figures)))];
      const head = `| ${['subject', cols[0], 'vs peer', ...cols.slice(1), 'runs'].join(' | ')} |\n|${['---', '---:', '---', ...cols.slice(1).map(() => '---:'), '---:'].join('|')}|`;
      const body = rs.map((r) => `| ${[r.subject, fmt(r.figures[cols[0]!]), r.vs ?? '', ...cols.slice(1).map((c) => fmt(r.figures[c])), r.runs].join(' | ')} |`);
      return [`### ${s}`, '', head, ...body].join('\n');
    })
    .join('\n\n');
}

export function machine(): string {
  const c = cpus();
  return `${c.length} × ${c[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${process.platform}/${process.arch}`;
}

export function writeResults(name: string, result: { rows: Row[]; notes: string[]; method: string; settings: Record<string, unknown>; machineCheck?: unknown; d1?: unknown }): string {
  const dir = resolve(import.meta.dirname, 'results');
  mkdirSync(dir, { recursive: true });
  const file = resolve(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify({ name, at: new Date().toISOString(), machine: machine(), ...result }, null, 2)}\n`);
  return file;
}
