/**
 * A small, honest measuring kit: every figure is the median of several timed runs, each run long
 * enough to swamp timer noise, after a warm-up. Results print as a Markdown table and are written
 * as JSON under bench/results/.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { resolve } from 'node:path';

export interface Row {
  scenario: string;
  subject: string;
  metric: string;
  value: number;
  unit: string;
  /** e.g. "1.00× (peer)" or "3.2× cbor-x alone" */
  vs?: string;
  runs: number[];
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

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

const fmt = (n: number): string => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : n.toFixed(n < 10 ? 2 : 0));

export function table(rows: Row[]): string {
  const head = '| scenario | subject | metric | median | vs peer | runs |\n|---|---|---|---:|---|---|';
  const body = rows.map((r) => `| ${r.scenario} | ${r.subject} | ${r.metric} | ${fmt(r.value)} ${r.unit} | ${r.vs ?? ''} | ${r.runs.length} |`);
  return [head, ...body].join('\n');
}

export function machine(): string {
  const c = cpus();
  return `${c.length} × ${c[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${process.platform}/${process.arch}`;
}

export function writeResults(name: string, rows: Row[], method: string): string {
  const dir = resolve(import.meta.dirname, 'results');
  mkdirSync(dir, { recursive: true });
  const file = resolve(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify({ name, at: new Date().toISOString(), machine: machine(), method, rows }, null, 2)}\n`);
  return file;
}
