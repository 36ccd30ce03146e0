/**
 * `npm start` with EDGEFLUX_HOST=0.0.0.0 serves every address on the ports it announces (HTTP, MQTT,
 * MQTT over WebSocket and TLS, CoAP) and on no other: its relay between wrangler's proxy and the
 * worker (scripts/worker-relay.ts), the worker's own port, and miniflare's loopback servers (which
 * write and read files for whoever calls them: scripts/public-port.ts) all listen on 127.0.0.1.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandLine } from '../../bench/procs';
import { freePort, groupListeners, startPlatform, type Platform } from './processes';

/** This machine's first IPv4 address that is not loopback, if it has one. */
const outsideAddress = () =>
  Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

/** 'connected', or the error code of a TCP connect to host:port. */
const tryConnect = (host: string, port: number) =>
  new Promise<string>((ok) => {
    const s = connect({ host, port, timeout: 5000 });
    s.once('connect', () => (s.destroy(), ok('connected')));
    s.once('timeout', () => (s.destroy(), ok('timeout')));
    s.once('error', (e: NodeJS.ErrnoException) => ok(e.code ?? e.message));
  });

/** 127.0.0.0/8, ::1, and 127.x mapped into IPv6 (::ffff:7f00:1). */
const isLoopback = (address: string) => address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:7f');

/** A self-signed certificate and key for MQTT over TLS, if openssl is here. */
function selfSigned(dir: string): { cert: string; key: string } | undefined {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', key, '-out', cert], { encoding: 'utf8' });
  return r.status === 0 ? { cert, key } : undefined;
}

describe('npm start with EDGEFLUX_HOST=0.0.0.0', () => {
  let platform: Platform;
  let tlsPort: number | undefined;
  const certDir = mkdtempSync(join(tmpdir(), 'edgeflux-tls-'));
  beforeAll(async () => {
    const tls = selfSigned(certDir);
    tlsPort = tls ? await freePort() : undefined;
    platform = await startPlatform({
      EDGEFLUX_HOST: '0.0.0.0',
      ...(tls ? { EDGEFLUX_MQTT_TLS_CERT: tls.cert, EDGEFLUX_MQTT_TLS_KEY: tls.key, EDGEFLUX_MQTT_TLS_PORT: String(tlsPort) } : {}),
    });
  }, 120_000);
  afterAll(async () => {
    await platform?.stop();
    rmSync(certDir, { recursive: true, force: true });
  });

  it('the worker relay listens on loopback only', async ({ annotate }) => {
    const m = /^EDGEFLUX_WORKER_RELAY (\S+) (\d+)$/m.exec(platform.output());
    expect(m, 'the dev server reports where the relay listens').not.toBeNull();
    const [, address, port] = m!;
    expect(address).toBe('127.0.0.1');
    // It is the relay: over loopback it answers with the worker's answer.
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);

    const outside = outsideAddress();
    if (!outside) {
      await annotate('this machine has no non-loopback IPv4 address: only the bound address was checked');
      return;
    }
    // The public port (the forwarder to wrangler's proxy) does serve that address, as EDGEFLUX_HOST asked…
    const publicPort = new URL(platform.url).port;
    expect((await fetch(`http://${outside}:${publicPort}/health`)).status).toBe(200);
    // …and the relay's port refuses it.
    expect(await tryConnect(outside, Number(port))).toBe('ECONNREFUSED');
  }, 30_000);

  it('listens on every address only on the ports it announces; all else on loopback', async ({ annotate }) => {
    const announced = new Set([
      `tcp ${new URL(platform.url).port}`,
      `tcp ${platform.mqttPort}`,
      `tcp ${platform.mqttWsPort}`,
      ...(tlsPort ? [`tcp ${tlsPort}`] : []),
      `udp ${platform.coapPort}`,
    ]);
    if (!tlsPort) await annotate('no openssl: MQTT over TLS was off');
    const listeners = groupListeners(platform.pid);
    // The announced ones are there, on every address, as EDGEFLUX_HOST asked.
    for (const port of announced) {
      const on = listeners.filter((l) => `${l.proto} ${l.port}` === port);
      expect(on.length, `${port} is listened on`).toBeGreaterThan(0);
      for (const l of on) expect(isLoopback(l.address), `${port} on ${l.address}`).toBe(false);
    }
    // Everything else, whoever opened it (launcher, wrangler and miniflare, workerd, the bridge), on loopback.
    const exposed = listeners.filter((l) => !announced.has(`${l.proto} ${l.port}`) && !isLoopback(l.address));
    expect(
      exposed.map((l) => `${l.proto} ${l.address}:${l.port} (pid ${l.pid}: ${commandLine(l.pid).slice(0, 120)})`),
      'sockets reachable from other hosts on a port npm start does not announce',
    ).toEqual([]);
    // There are such loopback listeners (the relay, the worker, miniflare's): the scan saw them.
    expect(listeners.filter((l) => isLoopback(l.address)).length).toBeGreaterThanOrEqual(3);

    const outside = outsideAddress();
    if (!outside) return;
    // From this machine's outside address only the announced TCP ports answer.
    for (const l of listeners.filter((x) => x.proto === 'tcp')) {
      const expected = announced.has(`tcp ${l.port}`) ? 'connected' : 'ECONNREFUSED';
      expect(`${l.port}: ${await tryConnect(outside, l.port)}`).toBe(`${l.port}: ${expected}`);
    }
  }, 60_000);
});

describe('npm start with an IPv6 EDGEFLUX_HOST (::)', () => {
  const ipv6 = Object.values(networkInterfaces())
    .flat()
    .some((a) => a?.family === 'IPv6' && a.internal);
  let platform: Platform | undefined;
  beforeAll(async () => {
    if (ipv6) platform = await startPlatform({ EDGEFLUX_HOST: '::' });
  }, 120_000);
  afterAll(async () => {
    await platform?.stop();
  });

  it('starts, says where it is in URLs that parse, and answers over IPv6 loopback', async ({ annotate }) => {
    if (!platform) {
      await annotate('this machine has no IPv6 loopback interface: only shared/config.test.ts checks the bracketed host');
      return;
    }
    const ready = new URL(platform.url);
    expect(ready.hostname).toBe('[::]');
    const res = await fetch(`http://[::1]:${ready.port}/health`);
    expect(res.status).toBe(200);
    // Every URL npm start prints for a listener is one a client can parse, the host in brackets.
    const mqtt = /MQTT\s+(mqtt:\/\/\S+)/.exec(platform.output())?.[1];
    expect(mqtt && new URL(mqtt).hostname).toBe('[::]');
    expect(new URL(mqtt!).port).toBe(String(platform.mqttPort));
  });
});
