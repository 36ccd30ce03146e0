/**
 * The bridge process: MQTT and CoAP for devices, turned into platform calls (docs/bridge.md).
 * `npm run bridge` runs it alone; `npm start` runs it next to the worker. It keeps no state of its
 * own, so any number can run side by side.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { loadConfig, urlHost } from '../shared/config';
import { createCoapServer } from './coap';
import { DEFAULT_LIMITS, type MqttLimits } from './mqtt/limits';
import { createMqttServer } from './mqtt/server';
import { DurableSessionStore } from './mqtt/session-durable';
import { startOpsServer } from './ops/server';
import { createPlatform } from './platform';
import { PlatformError } from './platform/types';
import { tlsFiles } from './tls-files';

const log = (msg: string) => console.log(`[bridge] ${msg}`);

/** BRIDGE_SECRET from the environment, else from the local .dev.vars that `npm start` writes. */
function bridgeSecret(fromEnv: string | undefined): string {
  if (fromEnv) return fromEnv;
  const file = resolve(process.cwd(), '.dev.vars');
  if (existsSync(file)) {
    const m = /^BRIDGE_SECRET=(.+)$/m.exec(readFileSync(file, 'utf8'));
    if (m?.[1]) return m[1].trim();
  }
  throw new Error('set EDGEFLUX_BRIDGE_SECRET (the worker\'s BRIDGE_SECRET), or run from a folder whose .dev.vars has it');
}

/** What the worker answers a wrong or missing bridge credential (workers/internal/index.ts requireBridge). */
const isBridgeRefused = (e: unknown): e is PlatformError => e instanceof PlatformError && e.status === 401 && e.code === 'unauthorized' && e.message === 'bridge credential required';

/** A message from elsewhere (an HTML page, say), cut for one log line. */
const cut = (s: string, max = 200) => (s.length > max ? `${s.slice(0, max)}… (${s.length} chars)` : s);

interface Listener {
  name: string;
  url: string;
  close: () => Promise<void>;
}

/** Calls `moved` with each `EDGEFLUX_WORKER_URL <url>` line on stdin. */
function followWorkerUrl(moved: (url: string) => void): void {
  createInterface({ input: process.stdin, crlfDelay: Infinity }).on('line', (line) => {
    const m = /^EDGEFLUX_WORKER_URL (https?:\/\/\S+)$/.exec(line.trim());
    if (!m?.[1]) return;
    moved(m[1]);
    log(`the worker is now at ${m[1]}`);
  });
}

async function main(): Promise<void> {
  const listeners: Listener[] = [];
  let closePlatform: (() => Promise<void>) | undefined;
  let closeOps: (() => Promise<void>) | undefined;
  // First of all: in a container the bridge is PID 1, and the kernel drops a signal PID 1 has no
  // handler for — a `docker stop` while the bridge still waits for the worker (its presence reset)
  // would otherwise wait out its timeout and end in SIGKILL.
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: closing`);
    await Promise.allSettled(listeners.map((l) => l.close()));
    await closePlatform?.();
    await closeOps?.();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));

  const cfg = loadConfig(process.env);
  const secret = bridgeSecret(cfg.bridgeSecret);
  // Presence is recorded per bridge; a stable id lets a restarted bridge clear what it had online.
  // On port 0 (any free port) the port names nothing: every such bridge of the host would share
  // `{hostname}:0`, and each one's startup reset would mark the others' devices offline.
  const randomId = cfg.bridgeId === undefined && cfg.mqttPort === 0;
  const bridgeId = cfg.bridgeId ?? `${hostname()}:${randomId ? `0-${randomBytes(4).toString('hex')}` : cfg.mqttPort}`;
  // No later bridge takes a random id: the devices a crash leaves online stay so (docs/mqtt.md "Presence").
  if (randomId) log(`warning: bridge id ${bridgeId} is random; set EDGEFLUX_BRIDGE_ID: a crash leaves presence no other bridge can reset`);
  // Under `npm start` the worker moves to a new local port when it reloads: the launcher says where
  // on stdin (`EDGEFLUX_WORKER_URL <url>` lines), and new connections to the worker go there.
  let workerUrl = cfg.workerUrl;
  if (process.env.EDGEFLUX_WORKER_URL_UPDATES === 'stdin') followWorkerUrl((url) => (workerUrl = url));
  const worker = () => workerUrl;
  const platform = createPlatform({ workerUrl: worker, bridgeSecret: secret, bridgeId, log });
  closePlatform = () => platform.close();
  await platform.resetPresence().catch((e: unknown) => {
    // The reset carries no device credential: the worker's own refusal of the bridge credential
    // (workers/internal/index.ts requireBridge) is about the bridge's secret. Every device would be
    // told its password is wrong (CONNACK 0x86 / 0x04, CoAP 4.01) by a bridge that said it was ready.
    // Any other 401 — a proxy's page in front of the worker — comes here as a 503 (internal-api.ts):
    // a worker not reached, the reset tried again in the background.
    if (isBridgeRefused(e)) throw new Error(`the worker at ${cfg.workerUrl} refused EDGEFLUX_BRIDGE_SECRET, or has no BRIDGE_SECRET set (${e.message}): set both to the same secret`);
    log(`presence of bridge ${bridgeId} not reset: ${cut(e instanceof Error ? e.message : String(e))}${e instanceof PlatformError && e.status === 503 ? ' (tried again in the background)' : ''}`);
  });
  if (stopping) return; // a signal came while the worker was being asked: no listener opens
  // Before the first listener: a TLS file that is wrong stops the bridge with its variable named.
  const tls = tlsFiles(cfg);

  // A signal while a listener binds: stop() has closed those it knew; the one that opened late is
  // closed here, no other opens, and EDGEFLUX_BRIDGE_READY is not printed.
  const opened = async (l: Listener): Promise<boolean> => {
    if (stopping) {
      await l.close();
      return false;
    }
    listeners.push(l);
    return true;
  };

  const coap = createCoapServer({ platform });
  const bound = await coap.listen(cfg.coapPort, cfg.host);
  if (!(await opened({ name: 'CoAP', url: bound.map((b) => `coap://${b.family === 'IPv6' ? `[${b.address}]` : b.address}:${b.port}`).join(' '), close: () => coap.close() }))) return;

  const unknown = Object.keys(cfg.mqttLimits).filter((k) => !(k in DEFAULT_LIMITS));
  if (unknown.length) throw new Error(`EDGEFLUX_MQTT_LIMITS: unknown limit(s) ${unknown.join(', ')}; known: ${Object.keys(DEFAULT_LIMITS).join(', ')}`);
  // Sessions in session actors: they survive a bridge restart and a takeover works across bridges.
  const sessions = cfg.mqttSessions === 'platform' ? new DurableSessionStore({ workerUrl: worker, bridgeSecret: secret, log }) : undefined;
  const mqtt = createMqttServer({ platform, log, limits: cfg.mqttLimits as Partial<MqttLimits>, ...(sessions ? { sessions } : {}) });
  const tcp = await mqtt.listenTcp(cfg.mqttPort, cfg.host);
  // Closing the server releases every session; then the session sockets go.
  if (!(await opened({ name: 'MQTT', url: `mqtt://${urlHost(cfg.host)}:${tcp.port}`, close: async () => (await mqtt.close(), await sessions?.close()) }))) return;
  // mqtt.close() closes these too; one that opened after it is left to stop()'s process.exit.
  const ws = await mqtt.listenWebSocket({ port: cfg.mqttWsPort, host: cfg.host, path: '/mqtt' });
  if (!(await opened({ name: 'MQTT-WS', url: `ws://${urlHost(cfg.host)}:${ws.port}/mqtt`, close: async () => undefined }))) return;
  if (tls) {
    const tlsServer = await mqtt.listenTls({ port: cfg.mqttTlsPort, host: cfg.host, ...tls });
    if (!(await opened({ name: 'MQTT-TLS', url: `mqtts://${urlHost(cfg.host)}:${tlsServer.port}`, close: async () => undefined }))) return;
  }

  // Health and metrics, on a port of their own; ready once every listener above is up (and the worker
  // has answered). Closed last by stop(), so a shutdown is seen there ("not ready: shutting down").
  const ops = cfg.metricsPort === undefined ? undefined : await startOpsServer({ bridgeId, mqtt, coap, platform, notReady: () => (stopping ? 'shutting down' : null) }, cfg.metricsPort, cfg.metricsHost);
  if (ops) closeOps = () => ops.close();
  if (stopping) return void (await ops?.close()); // a signal while it opened: no READY line
  // Announced with the listeners; closed by stop() after them.
  const announced = ops ? [...listeners, { name: 'Metrics', url: `http://${urlHost(cfg.metricsHost)}:${ops.port}/metrics` }] : listeners;
  for (const l of announced) log(`${l.name} on ${l.url}`);
  log(`bridge ${bridgeId}, worker ${cfg.workerUrl}, MQTT sessions in ${cfg.mqttSessions === 'platform' ? 'session actors' : 'memory'}`);
  // One machine-readable line for the launcher.
  console.log(`EDGEFLUX_BRIDGE_READY ${JSON.stringify(Object.fromEntries(announced.map((l) => [l.name.toLowerCase(), l.url])))}`);
}

main().catch((e: unknown) => {
  console.error(`[bridge] failed to start: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
