/**
 * Scenarios 1–6: the same client harness against every server that speaks the protocol, the
 * servers one after the other, every figure the median over the runs. After each
 * scenario the messages Edgeflux acknowledged are counted in D1 (query API `total`).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { medianRow, progress, ratios, type Row } from './harness';
import { idleConnections, openFlow, type FlowResult, type FlowSpec, type IdleResult, type Session } from './mqtt-load';
import type { Server } from './servers';
import { openWeb, type WebSpec } from './web-load';

export interface Settings {
  runs: number;
  seconds: number;
  /** Scenario 1: publishers, and the paced rate (msgs/s) at which latency is taken. */
  publishers: number;
  rate: number;
  /** Scenario 2: subscriber counts, and the deliveries/s offered (the publisher sends rate/M msgs/s). */
  fanout: number[];
  fanoutRate: number;
  /** Scenario 3: channels (one publisher, one subscriber each). */
  channels: number;
  /** Scenario 4: keep-alive HTTP publishers. */
  httpClients: number;
  /** Scenario 5: WebSocket subscribers, and the deliveries/s offered. */
  sockets: number;
  socketRate: number;
  /** Scenario 6: idle MQTT connections, and how long RSS is left to settle before it is read. */
  idle: number;
  settleMs: number;
  /** How long each scenario waits for Edgeflux's drain before reporting a storage difference. */
  storageWaitMs: number;
}

export interface Outcome {
  rows: Row[];
  /** Storage differences and failed runs: printed first. */
  storage: string[];
  notes: string[];
}

const figures = (r: FlowResult) => ({
  'delivered/s': r.received / r.seconds,
  'p50 ms': r.latency.p50,
  'p90 ms': r.latency.p90,
  'p99 ms': r.latency.p99,
  'max ms': r.latency.max,
  'harness stall ms': r.usage.harnessStallMs,
  'harness CPU %': r.usage.harnessCpuPct,
  'CPU s': r.usage.cpuSeconds,
  'CPU µs/msg': (r.usage.cpuSeconds / r.received) * 1e6,
  'peak RSS MiB': r.usage.peakRssMiB,
  'lost %': r.expected ? (100 * Math.max(0, r.expected - r.received)) / r.expected : 0,
});

/**
 * For every server in turn: one session (clients connected, subscribed, warmed up), `runs` timed
 * runs on it, one median row. (Setting up 2,000 authenticated connections takes longer than a run.)
 */
async function compare<R extends FlowResult>(scenario: string, servers: Server[], runs: number, open: (s: Server) => Promise<Session<R>>, out: Outcome, ratioOn = 'delivered/s'): Promise<void> {
  const results = new Map<Server, R[]>(servers.map((s) => [s, []]));
  for (const s of servers) {
    progress(`${scenario} · ${s.name}`);
    s.freshChannels();
    try {
      let session = await open(s);
      try {
        for (let r = 0; r < runs; r++) {
          progress(`  run ${r + 1}/${runs}`);
          const result = await session.run();
          results.get(s)!.push(result);
          // The server closed clients: the next run gets a new session rather than a half-dead one.
          if (result.closed && r + 1 < runs) {
            await session.close();
            session = await open(s);
          }
        }
      } finally {
        await session.close();
      }
    } catch (e) {
      // A server that cannot take the load is a result too: say so and go on with the others.
      const log = s.output ? saveLog(scenario, s.name, s.output()) : null;
      out.storage.push(`**FAILED** ${scenario}: ${s.name} (after ${results.get(s)!.length} of ${runs} runs): ${e instanceof Error ? e.message : String(e)}${s.output ? `; its log says: ${lastProblem(s.output())}` : ''}${log ? ` (whole log: ${log})` : ''}`);
    }
  }
  const rows = servers.filter((s) => results.get(s)!.length).map((s) => medianRow(scenario, s.name, results.get(s)!.map(figures)));
  out.rows.push(...ratios(rows, ratioOn));
  for (const s of servers.filter((x) => results.get(x)!.length)) {
    const closed = results.get(s)!.reduce((a, r) => a + r.closed, 0);
    const retries = Math.max(0, ...results.get(s)!.map((r) => r.subscribeRetries ?? 0));
    if (retries) out.notes.push(`${scenario}: ${s.name} refused ${retries} SUBSCRIBE(s) while the clients were set up; each was retried`);
    const by: Record<string, number> = {};
    for (const r of results.get(s)!) for (const [k, v] of Object.entries(r.usage.cpuBy)) by[k] = (by[k] ?? 0) + v;
    const cpu = Object.values(by).reduce((a, b) => a + b, 0);
    if (Object.keys(by).length > 1 && cpu > 0)
      out.notes.push(`${scenario}: ${s.name} CPU by process: ${Object.entries(by).sort((a, b) => b[1] - a[1]).filter(([, v]) => v / cpu >= 0.01).map(([k, v]) => `${k} ${((100 * v) / cpu).toFixed(0)}%`).join(', ')}`);
    if (closed) out.notes.push(`${scenario}: ${s.name} closed ${closed} client connection(s) while loaded (over ${runs} run(s))${s.output ? `; its log says: ${lastProblem(s.output())}` : ''}`);
    if (!s.storage) continue;
    let c: Awaited<ReturnType<typeof s.storage.check>>;
    try {
      c = await s.storage.check(storageWaitMs);
    } catch (e) {
      const log = s.output ? saveLog(scenario, s.name, s.output()) : null;
      out.storage.push(`**STORAGE NOT CHECKED** ${scenario}: ${s.name}: ${e instanceof Error ? `${e.message}${e.cause ? ` (${String(e.cause)})` : ''}` : String(e)}${log ? ` (whole log: ${log})` : ''}`);
      continue;
    }
    const line = `${scenario}: ${s.name} accepted ${c.expected} messages on ${c.channels} channel(s) (QoS 1 and HTTP: acknowledged; QoS 0: sent), D1 holds ${c.stored}`;
    if (c.stored !== c.expected) out.storage.push(`**STORAGE DIFFERENCE** ${line} (${c.stored - c.expected}${c.draining ? `; the drain was still writing after ${storageWaitMs / 1000} s, at ${c.drainRate.toFixed(0)} rows/s` : ''})`);
    else out.notes.push(`storage ok: ${line}`);
  }
}

/** How long a scenario waits for the drain to put everything in D1 before it reports a difference. */
let storageWaitMs = 60_000;

/** The last line of a server's log that looks like a refusal, for the notes. */
/** The whole log of a server whose run failed, under bench/results/ (git-ignored): the path, or null if it could not be written. */
function saveLog(scenario: string, server: string, log: string): string | null {
  const file = join('bench', 'results', `failed-${scenario.split(' ')[0]}-${server.replace(/\W+/g, '-').toLowerCase()}-${new Date().toISOString().replace(/[:.]/g, '-')}.log`);
  try {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, log);
    return file;
  } catch {
    return null;
  }
}

const lastProblem = (log: string) => log.split('\n').filter((l) => /error|refused|closed:/i.test(l) && !/the client closed the connection/.test(l)).at(-1)?.trim() ?? '(nothing logged)';

const mqttServers = (all: Server[]) => all.filter((s) => s.mqttPort);
const webServers = (all: Server[]) => all.filter((s) => s.httpUrl);

export const SCENARIOS = ['fanin', 'paced', 'fanout', 'channels', 'http', 'ws', 'idle'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/** Appends to `out` as each scenario finishes, so an interrupted run still has what it measured. */
export async function runScenarios(all: Server[], only: Set<string>, o: Settings, out: Outcome): Promise<Outcome> {
  storageWaitMs = o.storageWaitMs;
  const mq = mqttServers(all);
  // Idle connections first: RSS is steadiest before any load has grown (and later shrunk) the heaps.
  if (only.has('idle')) {
    const rows: Row[] = [];
    for (const s of mq) {
      const batch = Math.ceil(o.idle / o.runs);
      progress(`6 idle connections · ${s.name} · ${o.runs} × ${batch}`);
      let rs: IdleResult[] = [];
      try {
        rs = await idleConnections(s, batch, o.runs, o.settleMs);
      } catch (e) {
        out.storage.push(`**FAILED** 6 idle connections: ${s.name}: ${e instanceof Error ? e.message : String(e)}${s.output ? `; its log says: ${lastProblem(s.output())}` : ''}`);
      }
      if (!rs.length) continue;
      const perConn = (mib: number, n: number) => (mib * 1024) / n;
      const holder = s.connectionPids().length === s.pids().length ? s.name : `${s.name} bridge`;
      rows.push(medianRow(`6 idle MQTT connections (${o.idle} in ${o.runs} batches, all kept open)`, holder, rs.map((x) => ({ 'KiB/conn': perConn(x.holderMiB, x.connections), connections: x.connections, 'RSS growth MiB': x.holderMiB }))));
      const uncollected = rs.filter((x) => !x.collected).length;
      if (uncollected) out.storage.push(`**NOT GARBAGE-COLLECTED** 6 idle connections: ${s.name}: ${uncollected} of ${rs.length} batch(es) were read without a forced GC (the inspector on 127.0.0.1:9229 was not this process's — another Node process holds the port?); those figures include garbage`);
      if (holder !== s.name) out.notes.push(`6 idle: ${s.name}, all processes (bridge + workerd + wrangler) grew ${(rs.reduce((a, x) => a + x.allMiB, 0) / rs.length).toFixed(1)} MiB on average per batch of ${batch} connections`);
    }
    out.rows.push(...ratios(rows, 'KiB/conn', 'Edgeflux bridge'));
  }
  const base: Omit<FlowSpec, 'qos'> = { channels: 1, publishersPerChannel: o.publishers, subscribersPerChannel: 1, seconds: o.seconds };
  if (only.has('fanin')) {
    await compare(`1 MQTT fan-in ${o.publishers}→1, QoS 0, ≤ 1000 in flight`, mq, o.runs, (s) => openFlow(s, { ...base, qos: 0, window: 1000 }), out);
    await compare(`1 MQTT fan-in ${o.publishers}→1, QoS 1, 8 in flight per publisher`, mq, o.runs, (s) => openFlow(s, { ...base, qos: 1, window: 8 }), out);
  }
  // `paced` alone: the latency figure without the saturated runs before it (whose leftovers it then does not see).
  if (only.has('fanin') || only.has('paced')) {
    await compare(`1 MQTT fan-in ${o.publishers}→1, QoS 0, paced at ${o.rate} msgs/s`, mq, o.runs, (s) => openFlow(s, { ...base, qos: 0, rate: o.rate }), out, 'p99 ms');
  }
  if (only.has('fanout'))
    for (const m of o.fanout) {
      const rate = o.fanoutRate / m;
      await compare(`2 MQTT fan-out 1→${m}, QoS 0, ${rate.toFixed(rate < 10 ? 1 : 0)} msgs/s published (${o.fanoutRate} deliveries/s offered)`, mq, o.runs, (s) => openFlow(s, { channels: 1, publishersPerChannel: 1, subscribersPerChannel: m, qos: 0, seconds: o.seconds, rate }), out, 'CPU µs/msg');
    }
  if (only.has('channels')) await compare(`3 many channels: ${o.channels} × (1 publisher QoS 1 → 1 subscriber)`, mq, o.runs, (s) => openFlow(s, { channels: o.channels, publishersPerChannel: 1, subscribersPerChannel: 1, qos: 1, seconds: o.seconds, window: 1 }), out);
  const web = webServers(all);
  if (only.has('http')) {
    const spec: WebSpec = { sockets: 1, clients: o.httpClients, seconds: o.seconds };
    await compare(`4 HTTP publish: ${o.httpClients} keep-alive POST clients → 1 WebSocket subscriber`, web, o.runs, (s) => openWeb(s, spec), out);
  }
  if (only.has('ws')) {
    const spec: WebSpec = { sockets: o.sockets, clients: 4, seconds: o.seconds, rate: o.socketRate / o.sockets };
    await compare(`5 WebSocket fan-out to ${o.sockets} sockets, ${(o.socketRate / o.sockets).toFixed(0)} POSTs/s (${o.socketRate} deliveries/s offered)`, web, o.runs, (s) => openWeb(s, spec), out, 'CPU µs/msg');
  }
  return out;
}
