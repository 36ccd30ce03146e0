/**
 * The bridge's operations endpoint (docs/bridge.md "Health and metrics"), on its own port
 * (`EDGEFLUX_METRICS_PORT`; off when unset), never on a device-facing one:
 *
 *   GET /healthz   200 while the process answers (liveness)
 *   GET /readyz    200 once the listeners are up and the worker has answered; 503 before, and while shutting down (readiness)
 *   GET /metrics   Prometheus text: MQTT and CoAP traffic, links to channel actors, the worker, the process
 *
 * Metrics are read from what the front-ends keep anyway (counters are plain numbers bumped on the
 * packet path, bridge/ops/counters.ts) when a scrape asks, so an unscraped bridge pays nothing more.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { CoapServer } from '../coap';
import type { MqttServer } from '../mqtt/server';
import type { RealPlatform } from '../platform';
import { PACKET_TYPES, type MqttCounters } from './counters';

export interface OpsSources {
  bridgeId: string;
  mqtt: MqttServer;
  coap: CoapServer;
  platform: Pick<RealPlatform, 'stats'>;
  /** Why the bridge is not ready to serve (null: ready). The server adds the worker's first answer. */
  notReady: () => string | null;
  now?: () => number;
}

export interface OpsServer {
  port: number;
  close(): Promise<void>;
}

const hex = (code: number) => `0x${code.toString(16).padStart(2, '0')}`;
const QOS = ['0', '1', '2'] as const;
const TRANSPORTS = ['tcp', 'tls', 'ws'] as const;
const STATES = ['connected', 'connecting'] as const;

/** A counter whose value is read at scrape time from a number kept elsewhere (prom-client counters only go up by `inc`). */
function readCounter(registry: Registry, name: string, help: string, labelNames: string[], read: () => [Record<string, string>, number][]): void {
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of read()) this.inc(labels, value);
    },
  });
}

function readGauge(registry: Registry, name: string, help: string, labelNames: string[], read: () => [Record<string, string>, number][]): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of read()) this.set(labels, value);
    },
  });
}

/** The registry of every metric the bridge exposes (exported for tests). */
export function bridgeRegistry(src: OpsSources): Registry {
  const registry = new Registry();
  const c: MqttCounters = src.mqtt.context.counters;
  collectDefaultMetrics({ register: registry });

  readGauge(registry, 'edgeflux_bridge_info', 'This bridge: its id in presence records', ['bridge'], () => [[{ bridge: src.bridgeId }, 1]]);

  readGauge(registry, 'edgeflux_bridge_mqtt_connections', 'Open MQTT connections by transport and state (connecting: CONNECT not yet answered, or no CONNECT yet)', ['transport', 'state'], () => {
    // Every pair, 0 included: an alert on "no connections" needs the series to be there.
    const counts = new Map<string, number>(TRANSPORTS.flatMap((t) => STATES.map((s) => [`${t} ${s}`, 0] as [string, number])));
    for (const conn of src.mqtt.connections) {
      if (conn.phase === 'closed') continue;
      const key = `${conn.info.transport ?? 'tcp'} ${conn.phase === 'open' ? 'connected' : 'connecting'}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return [...counts].map(([key, n]) => {
      const [transport = 'tcp', state = 'connected'] = key.split(' ');
      return [{ transport, state }, n];
    });
  });
  readGauge(registry, 'edgeflux_bridge_mqtt_devices', 'Devices with at least one MQTT connection on this bridge', [], () => [[{}, src.mqtt.context.devices.size]]);
  readCounter(registry, 'edgeflux_bridge_mqtt_packets_received_total', 'MQTT control packets read from clients, by type', ['type'], () => PACKET_TYPES.map((t) => [{ type: t }, c.received[t]]));
  readCounter(registry, 'edgeflux_bridge_mqtt_packets_sent_total', 'MQTT control packets written to clients, by type', ['type'], () => PACKET_TYPES.map((t) => [{ type: t }, c.sent[t]]));
  readCounter(registry, 'edgeflux_bridge_mqtt_publishes_received_total', 'PUBLISH packets read from clients, by QoS', ['qos'], () => QOS.map((q, i) => [{ qos: q }, c.publishesIn[i]!]));
  readCounter(registry, 'edgeflux_bridge_mqtt_publishes_sent_total', 'PUBLISH packets written to clients (deliveries), by QoS', ['qos'], () => QOS.map((q, i) => [{ qos: q }, c.publishesOut[i]!]));
  readCounter(registry, 'edgeflux_bridge_mqtt_publishes_refused_total', 'Publishes refused, by MQTT 5 reason code (0x97 quota: a rate or size limit; 0x87 not authorized; …)', ['reason_code'], () => [...c.publishRefusals].map(([code, n]) => [{ reason_code: hex(code) }, n]));
  readCounter(registry, 'edgeflux_bridge_mqtt_connects_total', 'CONNECTs decided, by MQTT 5 reason code: 0x00 accepted, else why refused (0x86 bad credentials, 0x97 too many connections, …), whatever a 3.1.1 client could be told', ['reason_code'], () => [...c.connects].map(([code, n]) => [{ reason_code: hex(code) }, n]));
  readCounter(registry, 'edgeflux_bridge_mqtt_disconnects_total', 'Connections the bridge ended after their CONNACK, by MQTT 5 reason code (0x8d keep alive, 0x8e taken over, 0x87 credential no longer good, …)', ['reason_code'], () => [...c.disconnects].map(([code, n]) => [{ reason_code: hex(code) }, n]));

  const coap = () => src.coap.stats();
  readGauge(registry, 'edgeflux_bridge_coap_observers', 'CoAP observations (RFC 7641) being served', [], () => [[{}, coap().observers]]);
  readGauge(registry, 'edgeflux_bridge_coap_devices', 'Devices seen over CoAP recently (online in presence)', [], () => [[{}, coap().onlineDevices]]);
  readGauge(registry, 'edgeflux_bridge_coap_confirmables_in_flight', 'Confirmable CoAP messages sent and not yet acknowledged', [], () => [[{}, coap().inFlight]]);
  readGauge(registry, 'edgeflux_bridge_coap_uploads_pending', 'Block-wise uploads (RFC 7959 Block1) under way', [], () => [[{}, coap().pendingUploads]]);
  readCounter(registry, 'edgeflux_bridge_coap_datagrams_received_total', 'UDP datagrams taken in by the CoAP server', [], () => [[{}, coap().datagramsReceived]]);
  readCounter(registry, 'edgeflux_bridge_coap_datagrams_sent_total', 'UDP datagrams sent by the CoAP server', [], () => [[{}, coap().datagramsSent]]);

  const platform = () => src.platform.stats();
  readGauge(registry, 'edgeflux_bridge_channel_links', 'Links to channel actors: open, or down (work waiting while connecting or before connecting again)', ['state'], () => {
    const s = platform();
    return [[{ state: 'open' }, s.linksOpen], [{ state: 'down' }, s.linksDown]];
  });
  readGauge(registry, 'edgeflux_bridge_channel_publishes_unanswered', 'Publishes sent to channel actors and not answered yet', [], () => [[{}, platform().unansweredPublishes]]);
  readGauge(registry, 'edgeflux_bridge_worker_up', '1 while the worker answers (the bridge asks every second which orgs\' access changed; up: an answer within the last 5 s), else 0', [], () => [[{}, platform().workerFollowed ? 1 : 0]]);
  readGauge(registry, 'edgeflux_bridge_worker_last_answer_timestamp_seconds', 'When the worker last answered, seconds since the epoch (absent before its first answer)', [], () => {
    const at = platform().workerAnsweredAt;
    return at === undefined ? [] : [[{}, at / 1000]];
  });
  return registry;
}

/**
 * Readiness: 503 with why, or 200 — with a word on the worker when it has gone quiet. A worker that
 * answered once and went quiet leaves the bridge ready: every bridge shares the one worker, so
 * taking them all out of a load balancer would turn a device's CONNACK 0x88 or CoAP 5.03 ("try
 * later") into a refused connection, and nothing would serve the decisions still cached. Alert on
 * `edgeflux_bridge_worker_up` instead.
 */
function readiness(src: OpsSources): { ready: boolean; text: string } {
  const own = src.notReady();
  if (own) return { ready: false, text: `not ready: ${own}` };
  const { workerAnsweredAt, workerFollowed } = src.platform.stats();
  if (workerAnsweredAt === undefined) return { ready: false, text: 'not ready: the worker has not answered yet' };
  if (workerFollowed) return { ready: true, text: 'ready' };
  const silent = Math.round(((src.now ?? Date.now)() - workerAnsweredAt) / 1000);
  return { ready: true, text: `ready; the worker has not answered for ${silent} s` };
}

/** The path of a request target, without parsing it as a URL (an absolute-form target need not be one). */
const pathOf = (target: string | undefined): string => {
  const t = (target ?? '/').split('?')[0]!;
  return t.startsWith('/') ? t : t.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]*/i, '') || '/';
};

export function startOpsServer(src: OpsSources, port: number, host: string): Promise<OpsServer> {
  const registry = bridgeRegistry(src);
  const text = (res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers });
    res.end(res.req.method === 'HEAD' ? undefined : body);
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    try {
      serve(req, res);
    } catch (e) {
      // Nothing a request carries may take the bridge down with it.
      if (!res.headersSent) text(res, 400, `bad request: ${e instanceof Error ? e.message : String(e)}\n`);
      else res.destroy();
    }
  });
  const serve = (req: IncomingMessage, res: ServerResponse) => {
    const path = pathOf(req.url);
    const known = path === '/healthz' || path === '/readyz' || path === '/metrics';
    if (!known) return text(res, 404, 'not found: GET /healthz, /readyz or /metrics\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(res, 405, 'GET or HEAD\n', { allow: 'GET, HEAD' });
    if (path === '/healthz') return text(res, 200, 'ok\n');
    if (path === '/readyz') {
      const r = readiness(src);
      return text(res, r.ready ? 200 : 503, `${r.text}\n`);
    }
    registry.metrics().then(
      (body) => text(res, 200, body, { 'content-type': registry.contentType }),
      (e: unknown) => text(res, 500, `metrics failed: ${e instanceof Error ? e.message : String(e)}\n`),
    );
  };
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const addr = server.address();
      resolve({
        port: typeof addr === 'object' && addr ? addr.port : port,
        // A scraper's kept-alive connection must not hold the bridge's shutdown.
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
