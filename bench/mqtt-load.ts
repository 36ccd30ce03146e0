/**
 * The MQTT client harness, the same for every broker: MQTT.js 3.1.1 clients (Aedes speaks no
 * MQTT 5), publishers either paced at a fixed offered rate or as fast as acknowledgements (QoS 1)
 * or TCP back-pressure (QoS 0) allow, subscribers that count arrivals and record latency.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { progress, settle, within } from './harness';
import { LatencyRecorder, stampedSenml, type Latency } from './latency';
import { collectGarbage, commandLine, ProcWatch, type Usage } from './procs';
import { pool, type Server } from './servers';

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
let clientSeq = 0;
/** Valid SenML (Edgeflux's bench channels default to application/senml+json), and no latency stamp. */
const WARM_UP = '[{"n":"warm-up","v":0}]';

/** `n` connected clients, credentials `first`…`first+n−1`, at most `concurrency` CONNECTs in flight. */
export async function connectMany(s: Server, n: number, opts: { first?: number; keepalive?: number; concurrency?: number } = {}): Promise<MqttClient[]> {
  const clients: MqttClient[] = [];
  try {
    await pool(Array.from({ length: n }, (_, i) => i), opts.concurrency ?? 20, async (i) => {
      // CONNACK "server unavailable" (3.1.1 code 3) is transient by definition: retry, as a device would.
      for (let attempt = 1; ; attempt++) {
        const c = mqtt.connect({ host: '127.0.0.1', port: s.mqttPort, clientId: `bench-${process.pid}-${++clientSeq}`, protocolVersion: 4, reconnectPeriod: 0, queueQoSZero: false, connectTimeout: 30_000, keepalive: opts.keepalive ?? 60, ...s.mqttAuth((opts.first ?? 0) + i) });
        const outcome = await new Promise<Error | undefined>((ok) => (c.once('connect', () => ok(undefined)), c.once('error', ok), c.once('close', () => ok(new Error(`${s.name} closed an MQTT connection before CONNACK`)))));
        c.on('error', () => undefined); // later errors end in 'close', which the scenarios count
        if (!outcome) {
          // MQTT.js leaves Nagle's algorithm on. Small publishes then wait for the peer's delayed
          // ACK (40 ms on Linux) and every server measured ~45 k msgs/s with a 40 ms p90: the
          // harness's limit, not theirs. The harness measures servers, so its sockets send at once.
          (c.stream as unknown as { setNoDelay?(on: boolean): void }).setNoDelay?.(true);
          clients.push(c);
          return;
        }
        c.end(true);
        if ((outcome as { code?: number }).code !== 3 || attempt >= 5) throw new Error(`${s.name}: CONNECT ${i + 1}/${n} failed: ${outcome.message}`);
        await wait(200 * attempt);
      }
    });
  } catch (e) {
    await closeAll(clients);
    throw e;
  }
  return clients;
}

/** How long closeAll waits for one client's end callback before destroying its socket: no close may hang a run. */
const END_WAIT_MS = 2000;

export async function closeAll(clients: MqttClient[]): Promise<void> {
  await Promise.all(
    clients.map(
      (c) =>
        new Promise<void>((r) => {
          const t = setTimeout(() => (c.stream?.destroy(), r()), END_WAIT_MS);
          c.end(true, {}, () => (clearTimeout(t), r()));
        }),
    ),
  );
}

export interface FlowSpec {
  channels: number;
  publishersPerChannel: number;
  subscribersPerChannel: number;
  qos: 0 | 1;
  seconds: number;
  /** Total msgs/s offered by all publishers together; unset: as fast as the broker takes them. */
  rate?: number;
  /** Unpaced: QoS 1 publishes each publisher keeps in flight; QoS 0 messages all publishers together
   * keep sent but not yet arrived (without it the kernel's socket buffers queue minutes of backlog). */
  window?: number;
}

export interface FlowResult {
  sent: number;
  acked: number;
  received: number;
  /** Deliveries that should have arrived: sent × subscribers per channel. */
  expected: number;
  /** From the first publish to the last arrival (or the end of sending). */
  seconds: number;
  latency: Latency;
  usage: Usage;
  /** Client connections the server closed while loaded. */
  closed: number;
  /** SUBSCRIBEs refused and retried while the session was set up. */
  subscribeRetries?: number;
}

/** Connected, subscribed, warmed-up clients; each `run()` publishes for `seconds` and waits for the tail. */
export interface Session<R> {
  run(): Promise<R>;
  close(): Promise<void>;
}

/** One run on fresh connections. */
export async function flow(s: Server, spec: FlowSpec): Promise<FlowResult> {
  const session = await openFlow(s, spec);
  try {
    return await session.run();
  } finally {
    await session.close();
  }
}

export async function openFlow(s: Server, spec: FlowSpec): Promise<Session<FlowResult>> {
  await s.channels(spec.channels);
  let lat = new LatencyRecorder();
  let received = 0;
  let lastArrival = 0;
  let subscribeRetries = 0;
  progress(`  ${spec.channels * spec.subscribersPerChannel} subscribers, ${spec.channels * spec.publishersPerChannel} publishers connecting`);
  const subs = await connectMany(s, spec.channels * spec.subscribersPerChannel, { first: 0 });
  const pubs: MqttClient[] = [];
  try {
    await pool(subs, 50, async (c, i) => {
      // A refused SUBSCRIBE (SUBACK 0x80) is retried twice, as a device would; retries are reported.
      for (let attempt = 1; ; attempt++) {
        try {
          await c.subscribeAsync(s.topic(i % spec.channels), { qos: spec.qos });
          break;
        } catch (e) {
          if (attempt >= 3) throw e;
          subscribeRetries++;
          await wait(500 * attempt);
        }
      }
      c.on('message', (_t, payload) => {
        received += lat.record(payload) || 1;
        lastArrival = performance.now();
      });
    });
    pubs.push(...(await connectMany(s, spec.channels * spec.publishersPerChannel, { first: 1 })));
    // Warm-up, not timed: one acknowledged publish per publisher, all arrived, so that cold starts
    // (Edgeflux: actor wake-up, the bridge's link to each channel) are not in the figures.
    progress('  warm-up');
    let warmAcked = 0;
    const warm = Promise.all(pubs.map((p, i) => p.publishAsync(s.topic(i % spec.channels), WARM_UP, { qos: 1 }).then(() => void warmAcked++)));
    try {
      await within(warm, 60_000, `${s.name} warm-up publishes`);
    } catch (e) {
      throw new Error(`${e instanceof Error ? e.message : String(e)} (${warmAcked} of ${pubs.length} acknowledged)`);
    }
    if (s.storage) for (let ch = 0; ch < spec.channels; ch++) s.storage.expect(ch, spec.publishersPerChannel);
    await settle(() => received, pubs.length * spec.subscribersPerChannel, 10_000);
  } catch (e) {
    await closeAll([...pubs, ...subs]);
    throw e;
  }
  let closed = 0;
  for (const c of [...subs, ...pubs]) c.once('close', () => closed++);

  const run = async (): Promise<FlowResult> => {
    received = 0;
    lastArrival = 0;
    closed = 0;
    lat = new LatencyRecorder();
    const sentBy = new Array<number>(spec.channels).fill(0);
    const ackedBy = new Array<number>(spec.channels).fill(0);
    const watch = new ProcWatch(s.pids()).start();
    const start = performance.now();
    const end = start + spec.seconds * 1000;
    const perPub = spec.rate ? spec.rate / pubs.length : 0;
    await Promise.all(
      pubs.map(async (p, i) => {
        const ch = i % spec.channels;
        const topic = s.topic(ch);
        const name = `p${i}`;
        const send = () => {
          sentBy[ch]!++;
          if (spec.qos === 0) p.publish(topic, stampedSenml(name), { qos: 0 });
          else p.publish(topic, stampedSenml(name), { qos: 1 }, (err) => void (err || ackedBy[ch]!++));
        };
        if (perPub) {
          // Paced: send whatever is due, then sleep a tick; the offered rate holds whatever the latency.
          let mine = 0;
          for (let now = performance.now(); now < end && p.connected; now = performance.now()) {
            const due = Math.floor(((now - start) / 1000) * perPub) - mine;
            for (let k = 0; k < due; k++) send();
            mine += Math.max(0, due);
            await wait(2);
          }
        } else if (spec.qos === 1) {
          await Promise.all(
            Array.from({ length: spec.window ?? 8 }, async () => {
              while (performance.now() < end && p.connected) {
                sentBy[ch]!++;
                // An ack that never comes ends this loop (and shows as a shortfall), not the benchmark.
                const ok = await within(p.publishAsync(topic, stampedSenml(name), { qos: 1 }), Math.max(0, end - performance.now()) + 10_000, 'PUBACK').then(() => true, () => false);
                if (ok) ackedBy[ch]!++;
                else if (performance.now() >= end) break;
              }
            }),
          );
        } else {
          // QoS 0 has no ack: the brake is arrivals (the window), then TCP back-pressure.
          const window = spec.window ?? 1000;
          const inFlight = () => sentBy.reduce((a, b) => a + b, 0) * spec.subscribersPerChannel - received;
          for (let k = 0; performance.now() < end && p.connected; k++) {
            if (inFlight() >= window * spec.subscribersPerChannel) {
              await wait(1);
              continue;
            }
            send();
            const stream = p.stream as unknown as { writableNeedDrain?: boolean; once(e: string, f: () => void): void };
            if (stream.writableNeedDrain) await new Promise<void>((r) => stream.once('drain', r));
            else if (k % 32 === 0) await new Promise((r) => setImmediate(r));
          }
        }
      }),
    );
    const sent = sentBy.reduce((a, b) => a + b, 0);
    const expected = sent * spec.subscribersPerChannel;
    await settle(() => received, expected, 2000 + spec.seconds * 1000);
    const usage = watch.stop();
    const closedByServer = closed;
    const acked = ackedBy.reduce((a, b) => a + b, 0);
    if (s.storage) for (let ch = 0; ch < spec.channels; ch++) s.storage.expect(ch, spec.qos === 1 ? ackedBy[ch]! : sentBy[ch]!);
    return { sent, acked, received, expected, seconds: (Math.max(lastArrival, end) - start) / 1000, latency: lat.summary(), usage, closed: closedByServer, subscribeRetries };
  };
  return { run, close: () => closeAll([...pubs, ...subs]) };
}

export interface IdleResult {
  connections: number;
  /** RSS growth of the process that holds the connections, MiB. */
  holderMiB: number;
  /** RSS growth of all the server's processes, MiB. */
  allMiB: number;
  /** Each Node holder was garbage-collected before both readings (false: the figure includes garbage). */
  collected: boolean;
}

/**
 * Opens `n` idle connections (CONNECT accepted, no subscriptions) `runs` times over, keeping all of
 * them open, and measures each batch's RSS growth: freed memory is seldom given back to the system,
 * so a batch opened after an earlier one was closed would reuse it and look free.
 */
export async function idleConnections(s: Server, n: number, runs = 1, settleMs = 2000): Promise<IdleResult[]> {
  const rss = (pids: number[]) => new ProcWatch(pids).start().stop().rssMiB;
  const open: MqttClient[] = [];
  try {
    // Warm-up: the connection code paths loaded and compiled before the baseline is read.
    open.push(...(await connectMany(s, Math.min(50, n), { keepalive: 600 })));
    const results: IdleResult[] = [];
    // Node servers (the Edgeflux bridge, Aedes) are garbage-collected before each reading.
    const node = (pid: number) => /\bnode\b|\btsx\b/.test(commandLine(pid));
    const gc = async () => {
      let all = true;
      for (const pid of s.connectionPids()) if (node(pid)) all = (await collectGarbage(pid).catch(() => false)) && all;
      return all;
    };
    for (let r = 0; r < runs; r++) {
      await wait(settleMs);
      const first = await gc();
      const before = { holder: rss(s.connectionPids()), all: rss(s.pids()) };
      const batch = await connectMany(s, n, { keepalive: 600, concurrency: 100 });
      open.push(...batch);
      await wait(settleMs); // let allocation settle before reading RSS
      const second = await gc();
      results.push({ connections: batch.length, holderMiB: rss(s.connectionPids()) - before.holder, allMiB: rss(s.pids()) - before.all, collected: first && second });
    }
    return results;
  } finally {
    await closeAll(open);
  }
}
