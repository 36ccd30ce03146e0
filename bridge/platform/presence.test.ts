import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { FakeClock, settle } from '../testing/fake-clock';
import { createPlatform } from './index';
import { PresenceCount, PresenceReports, RETRY_IN_FLIGHT } from './presence';
import { PlatformError } from './types';

describe('PresenceCount', () => {
  it('reports a device online when the first front-end has it and offline when the last lets go', () => {
    const said: [string, boolean][] = [];
    const p = new PresenceCount((id, online) => said.push([id, online]));
    p.set('d', true); // CoAP: a request
    p.set('d', true); // MQTT: a connection
    p.set('d', false); // MQTT: its last connection closed — CoAP still has it
    expect(said).toEqual([['d', true]]);
    p.set('d', false); // CoAP: idle
    expect(said).toEqual([
      ['d', true],
      ['d', false],
    ]);
    expect(p.devices).toEqual([]);
  });

  it('the other way round: CoAP going idle leaves a device MQTT still holds online', () => {
    const said: [string, boolean][] = [];
    const p = new PresenceCount((id, online) => said.push([id, online]));
    p.set('d', true); // MQTT
    p.set('d', true); // CoAP
    p.set('d', false); // CoAP idle sweep
    expect(said).toEqual([['d', true]]);
    expect(p.devices).toEqual(['d']);
  });

  it('keeps devices apart and ignores an offline for a device it never had', () => {
    const said: [string, boolean][] = [];
    const p = new PresenceCount((id, online) => said.push([id, online]));
    p.set('a', false);
    p.set('a', true);
    p.set('b', true);
    p.set('a', false);
    expect(said).toEqual([
      ['a', true],
      ['b', true],
      ['a', false],
    ]);
  });
});

describe('PresenceReports', () => {
  /** A platform that is unreachable while `down`, and records what it took. */
  function platform() {
    const taken: [string, boolean, number][] = [];
    const p = {
      down: true,
      refuse: null as PlatformError | null,
      calls: 0,
      taken,
      send: async (id: string, online: boolean, at: number) => {
        p.calls++;
        if (p.refuse) throw p.refuse;
        if (p.down) throw new PlatformError(503, 'platform unreachable: fetch failed (ECONNREFUSED)');
        taken.push([id, online, at]);
      },
    };
    return p;
  }

  it('sends again what the platform could not take (a worker reload): a device that left meanwhile ends offline', async () => {
    const clock = new FakeClock();
    const p = platform();
    const logs: string[] = [];
    const reports = new PresenceReports(p.send, clock, (m) => logs.push(m));
    p.down = false;
    reports.report('d', true);
    await settle();
    const onlineAt = clock.now();
    // The worker reloads; the device disconnects meanwhile.
    p.down = true;
    await clock.advance(5);
    reports.report('d', false);
    await settle();
    expect(p.taken).toEqual([['d', true, onlineAt]]);
    expect(reports.unsent).toBe(1);
    await clock.advance(1000); // still down: tried again, and later again
    expect(p.calls).toBe(3);
    p.down = false;
    await clock.advance(2000);
    // Sent with the time it was made, so the worker orders it against the other reports.
    expect(p.taken).toEqual([
      ['d', true, onlineAt],
      ['d', false, onlineAt + 5],
    ]);
    expect(reports.unsent).toBe(0);
    expect(logs.length).toBeGreaterThan(0);
    await clock.advance(60_000);
    expect(p.calls).toBe(4); // nothing more once taken
  });

  it(`sends waiting reports ${RETRY_IN_FLIGHT} at a time — one each retry while the platform is away — so log-ins are not queued behind thousands`, async () => {
    const clock = new FakeClock();
    const p = platform();
    let inFlight = 0;
    let most = 0;
    const send = async (id: string, online: boolean, at: number) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await Promise.resolve();
      try {
        await p.send(id, online, at);
      } finally {
        inFlight--;
      }
    };
    const reports = new PresenceReports(send, clock);
    for (let i = 0; i < 100; i++) reports.report(`d${i}`, false);
    await settle();
    expect(reports.unsent).toBe(100);
    const before = p.calls;
    await clock.advance(1000); // first retry, still away: a batch, not a hundred
    expect(p.calls - before).toBeLessThanOrEqual(RETRY_IN_FLIGHT);
    p.down = false;
    most = 0;
    await clock.advance(2000);
    for (let i = 0; i < 50 && reports.unsent > 0; i++) await settle();
    expect(reports.unsent).toBe(0);
    expect(p.taken).toHaveLength(100);
    expect(most).toBeLessThanOrEqual(RETRY_IN_FLIGHT);
  });

  it('leaves no waiting report stranded when the retried ones are refused for good (404): the rest still go', async () => {
    const clock = new FakeClock();
    const p = platform();
    const reports = new PresenceReports((id, online, at) => p.send(id, online, at), clock);
    for (let i = 0; i < 10; i++) reports.report(`d${i}`, false);
    await settle();
    p.down = false;
    const send = p.send;
    p.send = async (id, online, at) => {
      if (Number(id.slice(1)) < RETRY_IN_FLIGHT) throw new PlatformError(404, 'device not found');
      return send(id, online, at);
    };
    await clock.advance(600_000);
    expect(reports.unsent).toBe(0);
    expect(p.taken.map(([id]) => id).sort()).toEqual(['d8', 'd9']);
  });

  it('leaves no waiting report stranded when the retried ones are replaced by newer reports (devices reconnecting after a worker reload)', async () => {
    const clock = new FakeClock();
    const p = platform();
    let gate: Promise<void> | null = null;
    let open!: () => void;
    const send = async (id: string, online: boolean, at: number) => {
      if (gate) await gate;
      // The worker comes back for the newer (online) reports only after the retried ones failed.
      if (!online) return p.send(id, online, at);
      p.down = false;
      return p.send(id, online, at);
    };
    const reports = new PresenceReports(send, clock);
    for (let i = 0; i < 20; i++) reports.report(`e${i}`, false);
    await settle();
    expect(reports.unsent).toBe(20);
    gate = new Promise<void>((ok) => (open = ok));
    await clock.advance(1000); // the retry: RETRY_IN_FLIGHT on their way, held at the gate
    for (let i = 0; i < RETRY_IN_FLIGHT; i++) reports.report(`e${i}`, true); // they reconnect meanwhile
    gate = null;
    open(); // the retried ones fail (503); the newer ones follow and are taken
    for (let i = 0; i < 10; i++) await settle();
    await clock.advance(600_000);
    for (let i = 0; i < 10; i++) await settle();
    expect(reports.unsent).toBe(0);
    expect(p.taken).toHaveLength(20);
  });

  it('keeps one report per device on its way: an offline made while its online is still being sent follows it, in order', async () => {
    const clock = new FakeClock();
    const order: boolean[] = [];
    let release!: () => void;
    const send = (_id: string, online: boolean) => {
      order.push(online);
      return online ? new Promise<void>((r) => (release = r)) : Promise.resolve();
    };
    const reports = new PresenceReports(send, clock);
    reports.report('d', true);
    reports.report('d', false); // the same millisecond
    await settle();
    expect(order).toEqual([true]); // the offline waits for the online's answer
    release();
    await settle();
    expect(order).toEqual([true, false]);
    expect(reports.unsent).toBe(0);
  });

  it('sends only the latest report of a device, and drops one the platform refuses (a deleted device)', async () => {
    const clock = new FakeClock();
    const p = platform();
    const reports = new PresenceReports(p.send, clock);
    reports.report('d', true);
    await settle();
    await clock.advance(10);
    reports.report('d', false); // replaces the waiting one
    reports.report('e', true);
    await settle();
    p.down = false;
    await clock.advance(1000);
    expect(p.taken.map(([id, on]) => [id, on])).toEqual([
      ['d', false],
      ['e', true],
    ]);
    p.refuse = new PlatformError(404, 'device not found');
    reports.report('gone', false);
    await settle();
    await clock.advance(60_000);
    expect(p.calls).toBe(6); // three refused while down, two taken, the 404 once: never again
    expect(reports.unsent).toBe(0);
  });

  it('backs off while the platform stays away (1 s doubling, at most 30 s), and stops at close()', async () => {
    const clock = new FakeClock();
    const p = platform();
    const reports = new PresenceReports(p.send, clock);
    reports.report('d', true);
    await settle();
    const times: number[] = [];
    const start = clock.now();
    for (let i = 0; i < 8; i++) {
      const before = p.calls;
      while (p.calls === before) await clock.advance(500);
      times.push(clock.now() - start);
    }
    expect(times).toEqual([1000, 3000, 7000, 15_000, 31_000, 61_000, 91_000, 121_000]);
    reports.close();
    await clock.advance(120_000);
    expect(p.calls).toBe(9);
  });
});

describe('the platform client and presence', () => {
  it('sends again a report the worker could not take: a device that left while the worker reloaded is recorded offline (createPlatform, real HTTP)', async () => {
    let down = true;
    const taken: { online: boolean; at: number; bridge: string }[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        if (req.url === '/internal/access/changes') return void res.end(JSON.stringify({ epoch: 1, orgs: [], all: false }));
        if (req.url === '/internal/devices/d/presence') {
          // What a worker reloading under npm start looks like from here (or a deploy, a blip): 5xx / refused.
          if (down) return void res.writeHead(503).end(JSON.stringify({ detail: 'the worker is reloading' }));
          taken.push(JSON.parse(body) as { online: boolean; at: number; bridge: string });
          return void res.writeHead(204).end();
        }
        res.writeHead(404).end('{}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const platform = createPlatform({ workerUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bridgeSecret: 's', bridgeId: 'bridge-1' });
    try {
      platform.presence('d', true);
      await new Promise((r) => setTimeout(r, 50));
      platform.presence('d', false);
      await new Promise((r) => setTimeout(r, 50));
      expect(taken).toEqual([]);
      down = false;
      const until = Date.now() + 5000;
      while (taken.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      expect(taken).toEqual([{ online: false, at: expect.any(Number), bridge: 'bridge-1' }]);
    } finally {
      await platform.close();
      await new Promise((r) => server.close(r));
    }
  });
});

describe('the startup presence reset', () => {
  it('is tried again while the worker cannot take it, with the time the bridge started, and not after close()', async () => {
    const resets: { at: number; t: number }[] = [];
    let refusals = 2;
    const server: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        if (req.url !== '/internal/bridges/bridge-1/reset') return void res.writeHead(404).end('{}');
        resets.push({ at: (JSON.parse(body) as { at: number }).at, t: Date.now() });
        // The worker reloading (npm start), a deploy, a blip: 503 twice, then taken.
        if (refusals-- > 0) return void res.writeHead(503).end(JSON.stringify({ detail: 'the worker is reloading' }));
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const logs: string[] = [];
    const platform = createPlatform({ workerUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bridgeSecret: 's', bridgeId: 'bridge-1', log: (m) => logs.push(m) });
    const started = Date.now();
    try {
      await expect(platform.resetPresence()).rejects.toMatchObject({ status: 503 });
      const until = Date.now() + 8000;
      while (resets.length < 3 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      expect(resets).toHaveLength(3);
      // One time for every attempt: the bridge's start, so a device connected since stays online.
      expect(new Set(resets.map((r) => r.at)).size).toBe(1);
      expect(resets[0]!.at).toBeGreaterThanOrEqual(started);
      // 1 s, then 2 s.
      expect(resets[1]!.t - resets[0]!.t).toBeGreaterThanOrEqual(900);
      expect(resets[2]!.t - resets[1]!.t).toBeGreaterThanOrEqual(1900);
      expect(logs).toContain('presence of this bridge reset (tried again)');
    } finally {
      await platform.close();
    }
    // Closed while refused: nothing more is sent.
    refusals = 100;
    resets.length = 0;
    const again = createPlatform({ workerUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bridgeSecret: 's', bridgeId: 'bridge-1' });
    await expect(again.resetPresence()).rejects.toMatchObject({ status: 503 });
    await again.close();
    await new Promise((r) => setTimeout(r, 1500));
    expect(resets).toHaveLength(1);
    await new Promise((r) => server.close(r));
  }, 15_000);

  it('is not tried again when the worker refuses the bridge itself (401)', async () => {
    let asked = 0;
    const server: Server = createServer((req, res) => {
      if (req.url === '/internal/bridges/bridge-1/reset') asked++;
      req.resume();
      // The worker's own refusal (workers/internal/index.ts requireBridge): its problem JSON, with a code.
      req.on('end', () => void res.writeHead(401, { 'content-type': 'application/problem+json' }).end(JSON.stringify({ status: 401, code: 'unauthorized', detail: 'bridge credential required' })));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const platform = createPlatform({ workerUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bridgeSecret: 'wrong', bridgeId: 'bridge-1' });
    try {
      await expect(platform.resetPresence()).rejects.toMatchObject({ status: 401, code: 'unauthorized' });
      await new Promise((r) => setTimeout(r, 1500));
      expect(asked).toBe(1);
    } finally {
      await platform.close();
      await new Promise((r) => server.close(r));
    }
  });

  it('is tried again when a 401 is not the worker\'s own (a proxy\'s page in front of it): the worker was not reached', async () => {
    let asked = 0;
    let proxied = true;
    const server: Server = createServer((req, res) => {
      if (req.url === '/internal/bridges/bridge-1/reset') asked++;
      req.resume();
      req.on('end', () => void (proxied ? res.writeHead(401, { 'content-type': 'text/html' }).end('<html><body><h1>401 Authorization Required</h1></body></html>') : res.writeHead(204).end()));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const logs: string[] = [];
    const platform = createPlatform({ workerUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bridgeSecret: 's', bridgeId: 'bridge-1', log: (m) => logs.push(m) });
    try {
      await expect(platform.resetPresence()).rejects.toMatchObject({ status: 503, message: 'platform unreachable: HTTP 401: <html><body><h1>401 Authorization Required</h1></body></html>' });
      proxied = false; // the proxy lets the bridge through now
      const until = Date.now() + 5000;
      while (!logs.includes('presence of this bridge reset (tried again)') && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      expect(logs).toContain('presence of this bridge reset (tried again)');
      expect(asked).toBe(2);
    } finally {
      await platform.close();
      await new Promise((r) => server.close(r));
    }
  });
});
