/**
 * Keeps the benchmark harness from rotting: the kit's pieces on tiny sizes, the MQTT client harness
 * against the two peers (Mosquitto, Aedes), and `npm run bench -- --only codecs` end to end.
 * No figure is judged here — the benchmark does that — only that every part still measures.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codecScenarios } from '../../bench/codecs';
import { median, medianRow, ratios, table } from '../../bench/harness';
import { LatencyRecorder, stampedSenml } from '../../bench/latency';
import { describeCheck, machineCheck } from '../../bench/machine-check';
import { flow, idleConnections } from '../../bench/mqtt-load';
import { cpuSeconds, groupRunning, ProcWatch, processGroup, statusKiB } from '../../bench/procs';
import { startAedes, startEdgeflux, startMosquitto, type Server } from '../../bench/servers';
import { root } from './processes';

describe('bench kit', () => {
  it('takes medians, ratios and tables', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    const rows = ratios([medianRow('1 x', 'Edgeflux', [{ 'delivered/s': 50 }, { 'delivered/s': 70 }, { 'delivered/s': 60 }]), medianRow('1 x', 'Mosquitto', [{ 'delivered/s': 100 }])], 'delivered/s');
    expect(rows[0]!.figures['delivered/s']).toBe(60);
    expect(rows[0]!.vs).toBe('0.60× Mosquitto');
    expect(table(rows)).toContain('| Edgeflux | 60.0 | 0.60× Mosquitto | 3 |');
  });

  it('records latency from stamps, and ignores bytes without one', () => {
    const lat = new LatencyRecorder();
    expect(lat.record(Buffer.from(stampedSenml('p')))).toBe(1);
    expect(lat.record(JSON.stringify({ type: 'message', payload: stampedSenml('p') }))).toBe(1); // escaped inside a JSON string
    for (let i = 0; i < 200; i++) lat.record(randomBytes(i)); // random input never throws
    const s = lat.summary();
    expect(s.count).toBeGreaterThanOrEqual(2);
    expect(s.p50).toBeGreaterThanOrEqual(0);
    expect(s.max).toBeLessThan(1000);
  });

  it('probes the machine: CPU time of a fixed hash, sync latency of the temp directory', () => {
    const c = machineCheck(undefined, 20);
    expect(c.cpuMs).toBeGreaterThan(0);
    expect(c.syncP50Us).toBeGreaterThan(0);
    expect(c.syncP99Us).toBeGreaterThanOrEqual(c.syncP50Us);
    expect(describeCheck(c)).toMatch(/^SHA-256 of 64 MiB \d+ ms, 4 KiB write\+fdatasync p50 \d+ µs \/ p99 \d+ µs$/);
  });

  it('reads CPU and RSS of a process from /proc, and how long the harness itself stalled', async () => {
    expect(cpuSeconds(process.pid)).toBeGreaterThan(0);
    expect(statusKiB(process.pid, 'VmRSS')).toBeGreaterThan(1024);
    const pgid = Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[2]);
    expect(processGroup(pgid)).toContain(process.pid);
    const w = new ProcWatch([process.pid]).start();
    await new Promise((r) => setTimeout(r, 10)); // the monitor's first tick only sets its clock
    for (let t = Date.now(); Date.now() - t < 60; ); // holds this event loop ~60 ms
    await new Promise((r) => setTimeout(r, 20));
    const u = w.stop();
    expect(u.cpuSeconds).toBeGreaterThanOrEqual(0);
    expect(u.peakRssMiB).toBeGreaterThan(1);
    expect(u.harnessStallMs).toBeGreaterThan(40);
    expect(u.harnessStallMs).toBeLessThan(5000);
  });

  it('tells whether a process group still runs', async () => {
    const child = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    expect(groupRunning(child.pid!)).toBe(true);
    process.kill(-child.pid!, 'SIGKILL');
    await exited; // reaped by this process: gone from /proc
    expect(groupRunning(child.pid!)).toBe(false);
  });

  it('measures the codecs (tiny sizes)', () => {
    const rows = codecScenarios({ ms: 2, runs: 1 });
    expect(rows.length).toBeGreaterThan(10);
    expect(rows.every((r) => r.figures['per second']! > 0)).toBe(true);
    expect(rows.some((r) => r.subject.startsWith('MQTT v5 PUBLISH qos1 parse'))).toBe(true);
  });
});

describe('bench MQTT harness against the peers', () => {
  const peers: Server[] = [];
  beforeAll(async () => void peers.push(await startMosquitto(), await startAedes()));
  afterAll(async () => void (await Promise.all(peers.map((p) => p.stop()))));

  it('fans in, fans out and holds idle connections on Mosquitto and Aedes', async () => {
    for (const s of peers) {
      const r = await flow(s, { channels: 2, publishersPerChannel: 2, subscribersPerChannel: 2, qos: 1, seconds: 0.3, window: 2 });
      expect(r.acked).toBeGreaterThan(10);
      expect(r.received).toBe(r.expected);
      expect(r.latency.count).toBe(r.received);
      expect(r.usage.cpuSeconds).toBeGreaterThanOrEqual(0);
      const paced = await flow(s, { channels: 1, publishersPerChannel: 1, subscribersPerChannel: 1, qos: 0, seconds: 0.3, rate: 100 });
      expect(paced.sent).toBeGreaterThan(15);
      expect(paced.sent).toBeLessThan(45);
      const idle = await idleConnections(s, 20, 2, 100);
      expect(idle.map((x) => x.connections)).toEqual([20, 20]);
    }
  });
});

it('npm run bench -- --only codecs prints a table and writes its JSON', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-state-dir-'));
  try {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick', '--only', 'codecs', '--ms', '2', '--runs', '1', '--state-dir', dir], { cwd: root, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('### 7 codecs (one core)');
    // The method names where Edgeflux's state (and the machine check's sync probe) lives.
    expect(r.stdout).toContain(`Edgeflux's local state (D1, R2, every Durable Object's SQLite, each commit an fsync on workerd's thread) in ${dir};`);
    const file = /results: (\S+\.json)/.exec(r.stdout)?.[1];
    expect(file).toBeTruthy();
    const json = JSON.parse(readFileSync(file!, 'utf8')) as { rows: unknown[]; machine: string; settings: { stateDir: string } };
    rmSync(file!);
    expect(json.rows.length).toBeGreaterThan(10);
    expect(json.machine).toMatch(/Node v/);
    expect(json.settings.stateDir).toBe(dir);
    expect(readdirSync(dir)).toEqual([]); // the probe cleaned up after itself
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('--state-dir: the benchmark platform keeps its D1 and actors under it, counts what it stored, and removes it all when it stops', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-state-dir-'));
  try {
    const s = await startEdgeflux({ devices: 2, stateDir: dir });
    let files: string[];
    const n = 2000;
    try {
      // Stored messages, counted by the storage check, then weighed in D1 once the platform stopped.
      let next = 0;
      const post = async () => {
        for (let i = next++; i < n; i = next++) {
          const r = await fetch(`${s.httpUrl}${s.path(0)}`, { method: 'POST', headers: { ...s.httpHeaders(0), 'content-type': 'application/senml+json' }, body: JSON.stringify([{ n: `s${i % 10}`, v: i, t: i }]) });
          expect(r.status).toBe(202);
        }
      };
      await Promise.all(Array.from({ length: 16 }, post));
      s.storage!.expect(0, n);
      expect(await s.storage!.check(30_000)).toMatchObject({ expected: n, stored: n });
      expect(s.storage!.footprint()).toBeNull(); // known only once D1 is closed
      files = readdirSync(dir, { recursive: true, encoding: 'utf8' });
    } finally {
      await s.stop();
    }
    // D1's database and the provisioned channel's actor, each a SQLite file.
    for (const kind of [/\/v3\/d1\/[^/]+\/[0-9a-f]{64}\.sqlite$/, /\/v3\/do\/edgeflux-ChannelActor\/[0-9a-f]{64}\.sqlite$/]) expect(files.some((f) => f.startsWith('bench-edgeflux-') && kind.test(f)), files.join('\n')).toBe(true);
    expect(readdirSync(dir)).toEqual([]);
    const f = s.storage!.footprint();
    expect(f?.messages).toBe(n);
    // A row, a SenML record and six indexes: hundreds of bytes per message, not a few, not many KiB.
    const perMessage = f!.bytes / n;
    expect(perMessage, `${f!.bytes} bytes`).toBeGreaterThan(200);
    expect(perMessage, `${f!.bytes} bytes`).toBeLessThan(3000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
