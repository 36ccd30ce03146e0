/**
 * The HTTP/WebSocket client harness: keep-alive POST clients (node:http Agent, closed loop or paced)
 * publishing SenML on one channel, and WebSocket subscribers on that channel counting arrivals and
 * recording latency.
 */
import { Agent, request } from 'node:http';
import WebSocket from 'ws';
import { settle } from './harness';
import { LatencyRecorder, stampedSenml } from './latency';
import type { FlowResult, Session } from './mqtt-load';
import { ProcWatch } from './procs';
import { pool, type Server } from './servers';

export interface WebSpec {
  /** WebSocket subscribers on the channel. */
  sockets: number;
  /** Keep-alive HTTP publishers. */
  clients: number;
  seconds: number;
  /** Total POSTs/s offered; unset: each client posts again as soon as it has the answer. */
  rate?: number;
}

export interface WebResult extends FlowResult {
  /** POSTs answered with anything but 2xx. */
  refused: number;
}

function post(agent: Agent, url: URL, headers: Record<string, string>, body: string): Promise<number> {
  return new Promise((ok, fail) => {
    const req = request(url, { agent, method: 'POST', headers: { ...headers, 'content-type': 'application/senml+json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => ok(res.statusCode ?? 0));
    });
    req.on('error', fail);
    req.end(body);
  });
}

export async function openWeb(s: Server, spec: WebSpec): Promise<Session<WebResult>> {
  if (!s.httpUrl) throw new Error(`${s.name} takes no HTTP`);
  await s.channels(1);
  let lat = new LatencyRecorder();
  let received = 0;
  let lastArrival = 0;
  const sockets: WebSocket[] = [];
  const agent = new Agent({ keepAlive: true, maxSockets: spec.clients });
  const close = () => {
    for (const ws of sockets) ws.terminate();
    agent.destroy();
  };
  const url = new URL(`${s.httpUrl}${s.path(0)}`);
  try {
    const wsUrl = `${s.httpUrl.replace(/^http/, 'ws')}${s.path(0)}`;
    await pool(Array.from({ length: spec.sockets }, (_, i) => i), 50, async () => {
      // No compression offer: the deployed worker refuses permessage-deflate (wrangler.toml), but
      // wrangler's local dev server would negotiate it on its own hop (docs/performance.md, Method).
      const ws = new WebSocket(wsUrl, { headers: s.httpHeaders(0), perMessageDeflate: false });
      sockets.push(ws);
      ws.on('error', () => undefined); // after the upgrade, errors end in 'close', which is counted
      ws.on('message', (data: Buffer) => {
        received += lat.record(data) || (data.includes('warm-up') ? 1 : 0);
        lastArrival = performance.now();
      });
      await new Promise<void>((ok, fail) => (ws.once('open', () => ok()), ws.once('error', fail), ws.once('unexpected-response', (_q, res) => fail(new Error(`${s.name}: WebSocket upgrade answered ${res.statusCode}`)))));
    });
    // Warm-up, not timed: one publish that every socket has received (subscriptions in place, actor awake).
    await new Promise((r) => setTimeout(r, 200));
    const warm = await new Promise<number>((ok, fail) => {
      const req = request(url, { agent, method: 'POST', headers: { ...s.httpHeaders(1), 'content-type': 'text/plain' } }, (res) => (res.resume(), ok(res.statusCode ?? 0)));
      req.on('error', fail);
      req.end('warm-up');
    });
    if (warm < 200 || warm > 299) throw new Error(`${s.name}: warm-up POST answered ${warm}`);
    s.storage?.expect(0, 1);
    await settle(() => received, spec.sockets, 10_000);
  } catch (e) {
    close();
    throw e;
  }
  let closed = 0;
  for (const ws of sockets) ws.once('close', () => closed++);

  const run = async (): Promise<WebResult> => {
    received = 0;
    lastArrival = 0;
    closed = 0;
    lat = new LatencyRecorder();
    let sent = 0;
    let acked = 0;
    let refused = 0;
    const watch = new ProcWatch(s.pids()).start();
    const start = performance.now();
    const end = start + spec.seconds * 1000;
    const perClient = spec.rate ? spec.rate / spec.clients : 0;
    const one = async (i: number) => {
      sent++;
      const status = await post(agent, url, s.httpHeaders(1 + i), stampedSenml(`h${i}`));
      if (status >= 200 && status < 300) acked++;
      else refused++;
    };
    await Promise.all(
      Array.from({ length: spec.clients }, async (_, i) => {
        if (!perClient) {
          while (performance.now() < end) await one(i);
          return;
        }
        const inFlight: Promise<void>[] = [];
        let mine = 0;
        for (let now = performance.now(); now < end; now = performance.now()) {
          const due = Math.floor(((now - start) / 1000) * perClient) - mine;
          for (let k = 0; k < due; k++) inFlight.push(one(i));
          mine += Math.max(0, due);
          await new Promise((r) => setTimeout(r, 2));
        }
        await Promise.all(inFlight);
      }),
    );
    const expected = acked * spec.sockets;
    await settle(() => received, expected, 2000 + spec.seconds * 1000);
    const usage = watch.stop();
    const closedByServer = closed;
    s.storage?.expect(0, acked);
    return { sent, acked, refused, received, expected, seconds: (Math.max(lastArrival, end) - start) / 1000, latency: lat.summary(), usage, closed: closedByServer };
  };
  return { run, close: async () => close() };
}
