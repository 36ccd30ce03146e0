import { createHash } from 'node:crypto';
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * How fast this machine is right now, measured the same way in every run: a shared VM's CPU and
 * disk can drift by 2× within an hour (seen here), and every figure of a run moves with them. The
 * platform commits to SQLite (fsync) on workerd's one thread, so its figures follow the disk's
 * sync latency more than the peers' do.
 */
export interface MachineCheck {
  /** Milliseconds to SHA-256 64 MiB on one core (lower is faster). */
  cpuMs: number;
  /** A 4 KiB write + fdatasync, µs: median and 99th percentile of 200. */
  syncP50Us: number;
  syncP99Us: number;
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;

export function machineCheck(dir = tmpdir(), syncs = 200): MachineCheck {
  const block = Buffer.alloc(1 << 20, 7);
  const t0 = performance.now();
  const hash = createHash('sha256');
  for (let i = 0; i < 64; i++) hash.update(block);
  hash.digest();
  const cpuMs = performance.now() - t0;

  const where = mkdtempSync(join(dir, 'edgeflux-check-'));
  const fd = openSync(join(where, 'sync'), 'w');
  const page = Buffer.alloc(4096, 1);
  const times: number[] = [];
  try {
    for (let i = 0; i < syncs; i++) {
      const t = performance.now();
      writeSync(fd, page, 0, page.length, (i % 64) * page.length);
      fdatasyncSync(fd);
      times.push((performance.now() - t) * 1000);
    }
  } finally {
    closeSync(fd);
    rmSync(where, { recursive: true, force: true });
  }
  times.sort((a, b) => a - b);
  return { cpuMs: Math.round(cpuMs), syncP50Us: Math.round(quantile(times, 0.5)), syncP99Us: Math.round(quantile(times, 0.99)) };
}

export const describeCheck = (c: MachineCheck): string => `SHA-256 of 64 MiB ${c.cpuMs} ms, 4 KiB write+fdatasync p50 ${c.syncP50Us} µs / p99 ${c.syncP99Us} µs`;
