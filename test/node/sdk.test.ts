import { execFile } from 'node:child_process';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Edgeflux, type Message, type Subscribed } from '../../sdk';
import { freePort, provision, root, startPlatform, type Platform } from './processes';

/**
 * The SDK against the real local platform (wrangler dev + bridge): resume after a cut connection,
 * and the built package (dist/) imported by Node, Bun and Deno.
 */
const run = promisify(execFile);
const until = async (ok: () => boolean, ms = 10_000) => {
  for (const end = Date.now() + ms; !ok() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 25));
};

/** A TCP proxy in front of the platform whose connections can be cut and refused, like a flaky network. */
async function flakyProxy(target: URL): Promise<{ url: string; cut: () => void; down: (d: boolean) => void; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  let refusing = false;
  const server: Server = createServer((client) => {
    if (refusing) return void client.destroy();
    const upstream = createConnection(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const cut = () => sockets.forEach((s) => s.destroy());
  return {
    url: `http://127.0.0.1:${port}`,
    cut,
    down: (d) => (refusing = d),
    close: () => (cut(), new Promise((r) => server.close(() => r()))),
  };
}

let platform: Platform;
beforeAll(async () => {
  // The built package is what third parties import: build it from this checkout.
  await run('npm', ['run', '--silent', 'build:sdk'], { cwd: root });
  platform = await startPlatform({});
}, 120_000);
afterAll(() => platform?.stop());

describe('SDK subscribe', () => {
  it('reconnects after a cut connection and resumes from the last seq: the missed messages arrive once, in order', async () => {
    const w = await provision(platform.url);
    const proxy = await flakyProxy(new URL(platform.url));
    const direct = new Edgeflux({ url: platform.url, deviceKey: w.deviceKey });
    const viaProxy = new Edgeflux({ url: proxy.url, token: w.token });
    const got: Message[] = [];
    let retries = 0;
    const sub = viaProxy.subscribe(w.channel, { onMessage: (m) => got.push(m), onRetry: () => retries++, minDelayMs: 50, maxDelayMs: 300 });
    try {
      await sub.opened;
      const first = await direct.publish(w.channel, 'm0', { subtopic: 'a' });
      await until(() => got.length === 1);
      expect(got.map((m) => m.payload)).toEqual(['m0']);

      proxy.down(true);
      proxy.cut();
      await until(() => retries >= 2);
      expect(retries).toBeGreaterThanOrEqual(2); // it kept trying while the network was down
      for (const p of ['m1', 'm2', 'm3']) await direct.publish(w.channel, p, { subtopic: p === 'm2' ? 'b/c' : 'a' });
      expect(got).toHaveLength(1);

      proxy.down(false);
      await until(() => got.length === 4);
      await direct.publish(w.channel, 'm4');
      await until(() => got.length === 5);
      expect(got.map((m) => m.payload)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
      expect(got.map((m) => m.seq)).toEqual([0, 1, 2, 3, 4].map((i) => first.seq + i));
      expect(got[2]).toMatchObject({ subtopic: 'b/c', publisher: w.deviceId, protocol: 'http' });
      expect(sub.lastSeq).toBe(first.seq + 4);
    } finally {
      sub.close();
      await proxy.close();
    }
  }, 60_000);

  it('resumes from the channel seq it was subscribed at when the connection drops before any message', async () => {
    const w = await provision(platform.url);
    const proxy = await flakyProxy(new URL(platform.url));
    const direct = new Edgeflux({ url: platform.url, deviceKey: w.deviceKey });
    const viaProxy = new Edgeflux({ url: proxy.url, token: w.token });
    const old = await direct.publish(w.channel, 'before the subscription');
    const got: Message[] = [];
    const confirmed: Subscribed[] = [];
    let retries = 0;
    const sub = viaProxy.subscribe(w.channel, { onMessage: (m) => got.push(m), onSubscribed: (s) => confirmed.push(s), onRetry: () => retries++, minDelayMs: 50, maxDelayMs: 300 });
    try {
      await until(() => confirmed.length === 1);
      expect(confirmed).toEqual([{ seq: old.seq }]);
      expect(sub.lastSeq).toBe(old.seq);

      proxy.down(true);
      proxy.cut(); // no message has arrived on this socket yet
      await until(() => retries >= 1);
      const missed = [];
      for (const p of ['m1', 'm2', 'm3']) missed.push(await direct.publish(w.channel, p, { subtopic: 'x' }));
      expect(got).toEqual([]);

      proxy.down(false);
      await until(() => got.length === 3);
      await direct.publish(w.channel, 'm4');
      await until(() => got.length === 4);
      expect(confirmed[1]).toEqual({ seq: old.seq + 3, since: old.seq }); // resumed with since
      expect(got.map((m) => m.payload)).toEqual(['m1', 'm2', 'm3', 'm4']);
      expect(got.map((m) => m.seq)).toEqual([...missed.map((p) => p.seq), old.seq + 4]);
      expect(sub.lastSeq).toBe(old.seq + 4);
    } finally {
      sub.close();
      await proxy.close();
    }
  }, 60_000);

  it('learns at once that its API key was revoked: the server\'s last error frame ends the subscription, not the TCP close that follows (~15 s later locally)', async () => {
    const w = await provision(platform.url);
    const key = await w.call('POST', `/orgs/${w.org}/keys`, { name: 'revoked', scopes: ['messages:subscribe'] }, w.token);
    const direct = new Edgeflux({ url: platform.url, token: w.token });
    const viaKey = new Edgeflux({ url: platform.url, token: key.key });
    const confirmed: Subscribed[] = [];
    const sub = viaKey.subscribe(w.channel, { onMessage: () => undefined, onSubscribed: (s) => confirmed.push(s) });
    let ended: { at: number; status: number } | undefined;
    sub.closed.then(
      () => (ended = { at: Date.now(), status: 0 }),
      (e: { status: number }) => (ended = { at: Date.now(), status: e.status }),
    );
    await until(() => confirmed.length === 1);
    expect((await fetch(`${platform.url}/orgs/${w.org}/keys/${key.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${w.token}` } })).status).toBe(204);
    // Past REVOCATION_CACHE_TTL the next delivery asks again, and the actor refuses and closes.
    await new Promise((r) => setTimeout(r, 5500));
    const publishedAt = Date.now();
    await direct.publish(w.channel, 'after the revocation');
    await until(() => ended !== undefined, 10_000);
    expect(ended?.status).toBe(401);
    expect(ended!.at - publishedAt).toBeLessThan(3000);
  }, 60_000);
});

describe('the built SDK (dist/sdk.js)', () => {
  // Registers, logs in, creates an org and channel, subscribes, publishes, and hits an API error.
  const smoke = (spec: string, runtime: string, url: string) => `
    const { Edgeflux, EdgefluxError } = await import(${JSON.stringify(spec)});
    const ef = new Edgeflux({ url: ${JSON.stringify(url)} });
    const email = 'smoke-${runtime}-' + Date.now() + '@example.com';
    await ef.users.create({ email, password: 'correct horse battery' });
    await ef.login(email, 'correct horse battery');
    const org = await ef.orgs.create('smoke');
    const ch = await ef.org(org.id).channels.create({ name: 'c' });
    const got = [];
    const sub = ef.subscribe(ch.id, { onMessage: (m) => got.push(m.payload) });
    await sub.opened;
    await ef.publish(ch.id, 'hello from ${runtime}');
    for (let i = 0; i < 200 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    sub.close();
    let err = null;
    try { await ef.org('nope').get(); } catch (e) { err = e instanceof EdgefluxError ? e.status : String(e); }
    console.log(JSON.stringify({ got, err }));
  `;
  const dist = pathToFileURL(resolve(root, 'dist/sdk.js')).href;
  const bin = (name: string) => resolve(root, 'node_modules/.bin', name);
  const commands: Record<string, (code: string) => [string, string[]]> = {
    // Node 20 has no global WebSocket: this also covers the `ws` fallback. `edgeflux` resolves through package.json `exports`.
    node: (code) => [process.execPath, ['--input-type=module', '-e', code]],
    bun: (code) => [bin('bun'), ['-e', code]],
    deno: (code) => [bin('deno'), ['eval', '--ext=mjs', code]],
  };

  it.each(['node', 'bun', 'deno'])('works under %s', async (runtime) => {
    const code = smoke(runtime === 'node' ? 'edgeflux' : dist, runtime, platform.url);
    const [cmd, args] = commands[runtime]!(code);
    const { stdout } = await run(cmd, args, { cwd: root, timeout: 60_000 });
    expect(JSON.parse(stdout.trim().split('\n').pop()!)).toEqual({ got: [`hello from ${runtime}`], err: 404 });
  }, 90_000);
});
