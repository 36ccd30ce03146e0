import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { groupRunning, processGroup } from '../../bench/procs';

export const root = resolve(import.meta.dirname, '../..');

/**
 * The low end of the kernel's ephemeral port range (outgoing connections' source ports), or 0 if
 * unknown. A listening port handed out by bind(0) comes from that range, so a busy test run's
 * outgoing connections (and UDP sockets) could take it between the pick and the server's listen:
 * that happened (EADDRINUSE from the bridge). Ports below the range are never taken that way.
 */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) ? low : 0;
  } catch {
    return 0;
  }
}
const LOW = ephemeralLow();
const handedOut = new Set<number>();

const tryListen = (port: number): Promise<number | null> =>
  new Promise((ok) => {
    const s = createServer();
    s.unref();
    s.once('error', () => ok(null));
    s.listen(port, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => ok(typeof addr === 'object' && addr ? addr.port : null));
    });
  });

const tryUdp = (port: number): Promise<boolean> =>
  new Promise((ok) => {
    const s = createSocket('udp4');
    s.unref();
    s.once('error', () => ok(false));
    s.bind(port, '127.0.0.1', () => s.close(() => ok(true)));
  });

/** `EDGEFLUX_TEST_PORTS=lo-hi`: the range free ports are picked from (several people testing on one machine each take their own). */
function portRange(): [number, number] | null {
  const m = /^(\d+)-(\d+)$/.exec(process.env.EDGEFLUX_TEST_PORTS ?? '');
  if (m) return [Number(m[1]), Number(m[2]) + 1];
  return LOW > 11_000 ? [10_000, LOW] : null;
}

/**
 * A port nobody is listening on right now (127.0.0.1, TCP and UDP): a random one in
 * EDGEFLUX_TEST_PORTS when set, else below the ephemeral range when there is room there (10000 up),
 * else one the kernel picks.
 */
export async function freePort(): Promise<number> {
  const range = portRange();
  if (range) {
    const [lo, hi] = range;
    for (let i = 0; i < 200; i++) {
      const port = lo + Math.floor(Math.random() * (hi - lo));
      if (handedOut.has(port)) continue;
      if ((await tryListen(port)) === port && (await tryUdp(port))) {
        handedOut.add(port);
        return port;
      }
    }
  }
  const port = await tryListen(0);
  if (port === null) throw new Error('no free port');
  return port;
}

export interface Platform {
  url: string;
  coapPort: number;
  mqttPort: number;
  mqttWsPort: number;
  /** The launcher's pid, also the process group of wrangler, workerd and the bridge. */
  pid: number;
  output: () => string;
  stop: () => Promise<void>;
}

/** A user, org, device and channel, connected, provisioned over the real HTTP API. */
export async function provision(url: string, types: ('publish' | 'subscribe')[] = ['publish', 'subscribe']) {
  const call = async (method: string, path: string, body: unknown, token?: string) => {
    const res = await fetch(`${url}${path}`, { method, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
    const json = (await res.json().catch(() => null)) as Record<string, unknown> | null;
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json as Record<string, string>;
  };
  const email = `u-${Date.now()}-${Math.random().toString(36).slice(2)}@example.com`;
  await call('POST', '/users', { email, password: 'correct horse battery' });
  const token = (await call('POST', '/tokens', { email, password: 'correct horse battery' })).access_token!;
  const org = (await call('POST', '/orgs', { name: 'e2e' }, token)).id!;
  const device = await call('POST', `/orgs/${org}/devices`, { name: 'device' }, token);
  const channel = (await call('POST', `/orgs/${org}/channels`, { name: 'channel' }, token)).id!;
  await call('POST', `/orgs/${org}/connections`, { channel_ids: [channel], device_ids: [device.id], types }, token);
  return { token, org, channel, deviceId: device.id!, deviceKey: device.key!, call };
}

/** Waits up to `ms` for every process of group `pgid` to exit; false if some still run. */
async function groupGone(pgid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (groupRunning(pgid)) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

/** Runs `npm start`'s launcher as a real process group and waits until it prints EDGEFLUX_READY. */
export async function startPlatform(env: Record<string, string>, timeoutMs = 90_000): Promise<Platform> {
  // Every listener on a free port, so test files never collide with each other or a running platform.
  const ports = {
    EDGEFLUX_HTTP_PORT: env.EDGEFLUX_HTTP_PORT ?? String(await freePort()),
    EDGEFLUX_COAP_PORT: env.EDGEFLUX_COAP_PORT ?? String(await freePort()),
    EDGEFLUX_MQTT_PORT: env.EDGEFLUX_MQTT_PORT ?? String(await freePort()),
    EDGEFLUX_MQTT_WS_PORT: env.EDGEFLUX_MQTT_WS_PORT ?? String(await freePort()),
  };
  // A state directory of its own unless given one: two test files on `npm start`'s default
  // (<checkout>/.edgeflux/state) would share one D1 and one set of actor databases at once.
  const ownState = env.EDGEFLUX_STATE_DIR === undefined ? mkdtempSync(join(tmpdir(), 'edgeflux-platform-')) : null;
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'scripts/start.ts'], {
    cwd: root,
    env: { ...process.env, ...env, ...ports, ...(ownState ? { EDGEFLUX_STATE_DIR: ownState } : {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // own process group, so stop() reaches wrangler and workerd too
  });
  let out = '';
  // The last MiB only: a platform under a benchmark's load can log more than a string may hold.
  const keep = (d: Buffer) => (out = (out + d.toString()).slice(-(1 << 20)));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const stop = async () => {
    const forget = () => ownState && rmSync(ownState, { recursive: true, force: true });
    if (child.exitCode !== null || child.pid === undefined) return void forget();
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
    const timer = setTimeout(() => child.pid !== undefined && process.kill(-child.pid, 'SIGKILL'), 10_000);
    await exited;
    // The launcher exits as soon as it has signalled its children: wait for wrangler, workerd and
    // the bridge too, so that a caller removing the state directory next races nothing.
    if (!(await groupGone(child.pid, 10_000))) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* gone meanwhile */
      }
      await groupGone(child.pid, 5_000);
    }
    clearTimeout(timer);
    forget();
  };
  const url = await new Promise<string>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`platform not ready in ${timeoutMs}ms:\n${out}`)), timeoutMs);
    const check = () => {
      const m = /EDGEFLUX_READY (\S+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        ok(m[1]);
      }
    };
    child.stdout?.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`launcher exited with ${code}:\n${out}`));
    });
  }).catch(async (e: unknown) => {
    await stop();
    throw e;
  });
  return { url, coapPort: Number(ports.EDGEFLUX_COAP_PORT), mqttPort: Number(ports.EDGEFLUX_MQTT_PORT), mqttWsPort: Number(ports.EDGEFLUX_MQTT_WS_PORT), pid: child.pid!, output: () => out, stop };
}

export interface Bridge {
  mqttPort: number;
  output: () => string;
  /** SIGKILL: the process vanishes without releasing anything (a crash). */
  kill: () => Promise<void>;
  /** SIGTERM: a clean shutdown (sessions released). */
  stop: () => Promise<void>;
}

/**
 * One more bridge process (bridge/main.ts on Node) against a running platform, on free ports: a
 * second bridge instance, or one the test can crash and restart while the platform's own runs on.
 */
export async function startBridge(platform: Pick<Platform, 'url'>, env: Record<string, string> = {}, timeoutMs = 30_000): Promise<Bridge> {
  const ports = {
    EDGEFLUX_MQTT_PORT: env.EDGEFLUX_MQTT_PORT ?? String(await freePort()),
    EDGEFLUX_MQTT_WS_PORT: env.EDGEFLUX_MQTT_WS_PORT ?? String(await freePort()),
    EDGEFLUX_COAP_PORT: env.EDGEFLUX_COAP_PORT ?? String(await freePort()),
  };
  const child = spawn(process.execPath, ['--import', 'tsx', 'bridge/main.ts'], {
    cwd: root, // reads BRIDGE_SECRET from the .dev.vars the launcher wrote
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', ...env, ...ports, EDGEFLUX_WORKER_URL: platform.url },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const signal = async (sig: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(sig);
    await exited;
  };
  await new Promise<void>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`bridge not ready in ${timeoutMs}ms:\n${out}`)), timeoutMs);
    child.stdout.on('data', () => {
      if (out.includes('EDGEFLUX_BRIDGE_READY')) {
        clearTimeout(timer);
        ok();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`bridge exited with ${code}:\n${out}`));
    });
  }).catch(async (e: unknown) => {
    await signal('SIGKILL');
    throw e;
  });
  return { mqttPort: Number(ports.EDGEFLUX_MQTT_PORT), output: () => out, kill: () => signal('SIGKILL'), stop: () => signal('SIGTERM') };
}

export interface Listener {
  proto: 'tcp' | 'udp';
  address: string;
  port: number;
  pid: number;
}

/** An address of /proc/net/{tcp,udp}[6] (hex, each 32-bit word in host order: little-endian here) as text. */
function procAddress(hex: string): string {
  const words = hex.match(/.{8}/g)!.map((w) => w.match(/../g)!.reverse().join(''));
  if (words.length === 1) return words[0]!.match(/../g)!.map((b) => parseInt(b, 16)).join('.');
  // IPv6: the URL parser writes it in its shortest form ([::1], [::], [::ffff:7f00:1]).
  return new URL(`http://[${words.join('').match(/.{4}/g)!.join(':')}]`).hostname.slice(1, -1);
}

/**
 * Every socket the processes of group `pgid` could be reached on: listening TCP sockets and
 * unconnected (bound, state 07) UDP sockets, found by matching the socket inodes in /proc/<pid>/fd
 * against /proc/net/{tcp,tcp6,udp,udp6}.
 */
export function groupListeners(pgid: number): Listener[] {
  const owner = new Map<string, number>();
  for (const pid of processGroup(pgid)) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone meanwhile
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) owner.set(m[1]!, pid);
      } catch {
        /* closed meanwhile */
      }
    }
  }
  const found: Listener[] = [];
  for (const [file, proto, open] of [
    ['tcp', 'tcp', '0A'],
    ['tcp6', 'tcp', '0A'],
    ['udp', 'udp', '07'],
    ['udp6', 'udp', '07'],
  ] as const) {
    for (const line of readFileSync(`/proc/net/${file}`, 'utf8').trim().split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      const [local, state, inode] = [f[1]!, f[3]!, f[9]!];
      const pid = owner.get(inode);
      if (pid === undefined || state !== open) continue;
      const [hex, port] = local.split(':');
      found.push({ proto, address: procAddress(hex!), port: parseInt(port!, 16), pid });
    }
  }
  return found;
}
