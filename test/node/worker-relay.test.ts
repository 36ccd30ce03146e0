/**
 * `npm start`'s relay between wrangler's proxy and the worker (scripts/worker-relay.ts) serves only
 * that proxy, on this machine: it listens on loopback even when the platform serves every address
 * (EDGEFLUX_HOST=0.0.0.0), so nothing on another host reaches the worker except through the proxy.
 */
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPlatform, type Platform } from './processes';

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

describe("npm start's worker relay", () => {
  let platform: Platform;
  beforeAll(async () => {
    platform = await startPlatform({ EDGEFLUX_HOST: '0.0.0.0' });
  }, 120_000);
  afterAll(() => platform?.stop());

  it('listens on loopback only, even with EDGEFLUX_HOST=0.0.0.0', async ({ annotate }) => {
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
    // The public port (wrangler's proxy) does serve that address, as EDGEFLUX_HOST asked…
    const publicPort = new URL(platform.url).port;
    expect((await fetch(`http://${outside}:${publicPort}/health`)).status).toBe(200);
    // …and the relay's port refuses it.
    expect(await tryConnect(outside, Number(port))).toBe('ECONNREFUSED');
  }, 30_000);
});
