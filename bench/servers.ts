/**
 * The servers under test, all started in the same run and driven by the same client harness:
 * Edgeflux (wrangler dev + workerd + bridge, `npm start`'s launcher), Mosquitto (Debian package,
 * free port), Aedes (npm, its own process) and, for HTTP/WebSocket, a bare Node peer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort, provision, startPlatform } from '../test/node/processes';
import { commandLine, processGroup } from './procs';

export interface Server {
  name: string;
  /** Set when the server speaks MQTT. */
  mqttPort?: number;
  /** Set when the server takes HTTP publishes and WebSocket subscriptions. */
  httpUrl?: string;
  /** The processes whose CPU and RSS are the server's. */
  pids(): number[];
  /** The process that holds client connections (Edgeflux: the bridge). */
  connectionPids(): number[];
  /** MQTT topic of channel `ch` (0-based). */
  topic(ch: number): string;
  /** HTTP/WebSocket path of channel `ch`. */
  path(ch: number): string;
  /** MQTT credentials of client `i`. */
  mqttAuth(i: number): { username?: string; password?: string };
  /** HTTP/WebSocket headers of client `i`. */
  httpHeaders(i: number): Record<string, string>;
  /** Makes sure channels 0…n−1 exist (Edgeflux provisions them). */
  channels(n: number): Promise<void>;
  /** From now on channel numbers name new channels, so one scenario's backlog never counts in the next. */
  freshChannels(): void;
  /** Edgeflux only: what must end up in D1. */
  storage?: Storage;
  /** What the server printed (Edgeflux), for diagnosing a failed run. */
  output?: () => string;
  stop(): Promise<void>;
}

/** Counts what each channel was sent/acknowledged and compares it with the query API's `total`. */
export interface Storage {
  expect(ch: number, n: number): void;
  /** Waits (up to `ms`) for the drain to catch up; answers accepted vs newly stored messages since the last check. */
  check(ms?: number): Promise<{ expected: number; stored: number; channels: number; draining: boolean; drainRate: number }>;
  /**
   * What storing cost on disk, known once the platform has stopped (null before): the bytes of
   * D1's database files and the messages the checks counted in it. Read after workerd closed the
   * database, so its write-ahead log is checkpointed into the file.
   */
  footprint(): Footprint | null;
}

export interface Footprint {
  /** Messages counted in D1 by the storage checks (every scenario's channels). */
  messages: number;
  /** D1's database files (the database, and its WAL if one is left), every table and index. */
  bytes: number;
}

/** The bytes of local D1's SQLite files under a platform's state directory (wrangler's v3 layout). */
export function d1Bytes(state: string): number {
  const dir = join(state, 'v3', 'd1', 'miniflare-D1DatabaseObject');
  if (!existsSync(dir)) return 0;
  return readdirSync(dir)
    .filter((f) => /\.sqlite(-wal)?$/.test(f))
    .reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function untilReady(child: ChildProcess, what: string): Promise<Record<string, number>> {
  return new Promise((ok, fail) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error(`${what} did not start:\n${out}`)), 30_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /PEER_READY (\{.*\})/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        ok(JSON.parse(m[1]) as Record<string, number>);
      }
    });
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => (clearTimeout(timer), fail(new Error(`${what} exited (${code}):\n${out}`))));
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

function brokerBase(name: string, pid: number) {
  let set = 0;
  return {
    name,
    pids: () => [pid],
    connectionPids: () => [pid],
    topic: (ch: number) => `bench/s${set}c${ch}/bench`,
    path: (ch: number) => `/channels/s${set}c${ch}/messages/bench`,
    mqttAuth: () => ({}),
    httpHeaders: () => ({}),
    channels: async () => undefined,
    freshChannels: () => void set++,
  };
}

export async function startMosquitto(): Promise<Server> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'bench-mosq-'));
  // Defaults otherwise: QoS 0 to online clients is not queued beyond the socket, as in Edgeflux.
  writeFileSync(join(dir, 'm.conf'), `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_connections -1\nmax_queued_messages 10000\n`);
  const proc = spawn('mosquitto', ['-c', join(dir, 'm.conf')], { stdio: 'ignore' });
  proc.once('error', () => undefined);
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((r) => {
      const probe = connect(port, '127.0.0.1');
      probe.once('connect', () => (probe.destroy(), r(true))).once('error', () => r(false));
    });
    if (up) break;
    if (i > 50 || proc.exitCode !== null) throw new Error('mosquitto did not start (is the Debian package mosquitto installed?)');
    await wait(100);
  }
  return { ...brokerBase('Mosquitto', proc.pid!), mqttPort: port, stop: async () => (await stopChild(proc), rmSync(dir, { recursive: true, force: true })) };
}

const tsxNode = (file: string) => spawn(process.execPath, ['--import', 'tsx', resolve(import.meta.dirname, file)], { stdio: ['ignore', 'pipe', 'pipe'] });

export async function startAedes(): Promise<Server> {
  const proc = tsxNode('peers/aedes.ts');
  const { mqtt } = await untilReady(proc, 'aedes');
  return { ...brokerBase('Aedes', proc.pid!), mqttPort: mqtt, stop: () => stopChild(proc) };
}

export async function startPlainNode(): Promise<Server> {
  const proc = tsxNode('peers/plain.ts');
  const { http } = await untilReady(proc, 'plain node peer');
  return { ...brokerBase('bare Node (http+ws)', proc.pid!), httpUrl: `http://127.0.0.1:${http}`, stop: () => stopChild(proc) };
}

/**
 * The defaults protect a shared platform (100 msgs/s per device, 1000/s per channel, 10 connections
 * per device); a benchmark that hit them would measure the limiter. These are printed with the results.
 */
export const BENCH_MQTT_LIMITS = { publishRate: 1_000_000, publishBurst: 10_000_000, maxConnectionsPerDevice: 1_000_000 };
/** Rates lifted so the limiter is not what is measured; the payloads are SenML sent over MQTT 3.1.1 (no content type), so the channels say so. */
export const BENCH_CHANNEL_LIMITS = { channelRate: { perSecond: 1_000_000, burst: 10_000_000 }, publisherRate: { perSecond: 1_000_000, burst: 10_000_000 }, defaultContentType: 'application/senml+json' };

/** Runs `fn` over `items` with at most `n` at a time. */
export async function pool<T>(items: T[], n: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  }));
}

/** The longest one stored-message count may take (the query API answers in milliseconds). */
const COUNT_TIMEOUT_MS = 15_000;

/**
 * `profileDir`: the bridge writes a V8 CPU profile of its whole life there when it exits
 * (bench/profile-hook.mjs). `stateDir`: where the platform's fresh state directory is made
 * (default the OS temp directory).
 */
export async function startEdgeflux(opts: { devices: number; profileDir?: string; stateDir?: string }): Promise<Server> {
  const state = mkdtempSync(join(opts.stateDir ?? tmpdir(), 'bench-edgeflux-'));
  const hook = resolve(import.meta.dirname, 'profile-hook.mjs');
  const profiling: Record<string, string> = opts.profileDir ? { BENCH_PROFILE_DIR: opts.profileDir, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${hook}`.trim() } : {};
  const platform = await startPlatform({ EDGEFLUX_STATE_DIR: state, EDGEFLUX_MQTT_LIMITS: JSON.stringify(BENCH_MQTT_LIMITS), ...profiling }).catch((e: unknown) => {
    rmSync(state, { recursive: true, force: true });
    throw e;
  });
  // Per channel: the stored total at the last storage check (the footprint counts their sum).
  const storedAt = new Map<number, number>();
  let footprint: Footprint | null = null;
  const stop = async () => {
    await platform.stop();
    footprint = { messages: [...storedAt.values()].reduce((a, b) => a + b, 0), bytes: d1Bytes(state) };
    rmSync(state, { recursive: true, force: true });
  };
  try {
    const w = await provision(platform.url);
    const call = w.call;
    const made = (await call('POST', `/orgs/${w.org}/devices/bulk`, { devices: Array.from({ length: Math.max(0, Math.min(99, opts.devices - 1)) }, (_, i) => ({ name: `bench${i}` })) }, w.token).catch(() => ({ items: [] }))) as unknown as { items: { id: string; key: string }[] };
    const devices = [{ id: w.deviceId, key: w.deviceKey }, ...made.items];
    const channels: string[] = [w.channel];
    let base = 0; // channel number 0 is channels[base]
    const limits = (id: string) => call('PATCH', `/orgs/${w.org}/channels/${id}/limits`, BENCH_CHANNEL_LIMITS, w.token);
    const connect = (ids: string[]) => call('POST', `/orgs/${w.org}/connections`, { channel_ids: ids, device_ids: devices.map((d) => d.id) }, w.token);
    if (made.items.length) await connect(channels);
    await limits(w.channel);

    // Per channel: messages accepted since the last check.
    const expected = new Map<number, number>();
    // Bounded: a count that never comes must end the scenario with a reported failure, not hang the run.
    const get = (base: string, path: string, ms: number) => fetch(`${base}${path}`, { headers: { authorization: `Bearer ${w.token}` }, signal: AbortSignal.timeout(ms) });
    // When the public port (wrangler's proxy) does not answer, ask the worker's own port (the one the
    // bridge dials) too, so the report says which of the two stopped.
    const direct = async (path: string): Promise<string> => {
      const worker = /\[bridge\] bridge \S+, worker (http:\/\/[^\s,]+),/.exec(platform.output())?.[1];
      if (!worker) return "the worker's own port is unknown";
      const t0 = Date.now();
      return get(worker, path, 5000).then(
        (r) => `the worker's own port (${worker}) answered HTTP ${r.status} in ${Date.now() - t0} ms`,
        (e: unknown) => `the worker's own port (${worker}) did not answer either: ${e instanceof Error ? e.message : String(e)}`,
      );
    };
    const total = async (ch: number) => {
      const path = `/channels/${channels[ch]}/messages?limit=1`;
      const res = await get(platform.url, path, COUNT_TIMEOUT_MS).catch(async (e: unknown) => {
        throw new Error(`counting the stored messages of channel ${ch} through ${platform.url}: ${e instanceof Error ? e.message : String(e)}; ${await direct(path)}`);
      });
      if (!res.ok) throw new Error(`counting the stored messages of channel ${ch}: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
      return ((await res.json()) as { total: number }).total;
    };
    const storage: Storage = {
      expect: (ch, n) => void expected.set(base + ch, (expected.get(base + ch) ?? 0) + n),
      footprint: () => footprint,
      check: async (ms = 60_000) => {
        const chs = [...expected.keys()];
        const want = chs.reduce((s, c) => s + expected.get(c)!, 0);
        const until = Date.now() + ms;
        const now = new Map<number, number>();
        let stored = 0;
        let draining = false;
        let first = -1;
        const t0 = Date.now();
        // The drain runs on the actor's alarm: poll until the count matches or stops moving for 5 s.
        for (let last = -1, still = 0; ; last = stored) {
          await pool(chs, 16, async (c) => void now.set(c, (await total(c)) - (storedAt.get(c) ?? 0)));
          stored = [...now.values()].reduce((a, b) => a + b, 0);
          if (first < 0) first = stored;
          still = stored === last ? still + 1 : 0;
          draining = stored !== last && last >= 0;
          if (stored >= want || Date.now() > until || still >= 10) break;
          await wait(500);
        }
        for (const c of chs) storedAt.set(c, (storedAt.get(c) ?? 0) + now.get(c)!);
        expected.clear();
        return { expected: want, stored, channels: chs.length, draining: draining && stored < want, drainRate: (stored - first) / Math.max(0.001, (Date.now() - t0) / 1000) };
      },
    };

    const pids = () => processGroup(platform.pid);
    return {
      name: 'Edgeflux',
      mqttPort: platform.mqttPort,
      httpUrl: platform.url,
      pids,
      connectionPids: () => pids().filter((p) => commandLine(p).includes('bridge/main')),
      topic: (ch) => `channels/${channels[base + ch]}/messages/bench`,
      path: (ch) => `/channels/${channels[base + ch]}/messages/bench`,
      mqttAuth: (i) => ({ username: devices[i % devices.length]!.id, password: devices[i % devices.length]!.key }),
      httpHeaders: (i) => ({ authorization: `Device ${devices[i % devices.length]!.key}` }),
      freshChannels: () => void (base = channels.length),
      channels: async (n) => {
        const want = base + n - channels.length;
        if (want <= 0) return;
        const batches = Array.from({ length: Math.ceil(want / 100) }, (_, b) => Math.min(100, want - b * 100));
        await pool(batches, 2, async (size) => {
          const r = (await call('POST', `/orgs/${w.org}/channels/bulk`, { channels: Array.from({ length: size }, (_, i) => ({ name: `bench-${channels.length}-${i}` })) }, w.token)) as unknown as { items: { id: string }[] };
          const ids = r.items.map((c) => c.id);
          channels.push(...ids);
          for (let i = 0; i < ids.length; i += Math.floor(1000 / devices.length)) await connect(ids.slice(i, i + Math.floor(1000 / devices.length)));
          await pool(ids, 8, async (id) => void (await limits(id)));
        });
      },
      storage,
      output: platform.output,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
