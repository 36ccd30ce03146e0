/**
 * `npm start`'s check, before it starts anything, that every port it will announce can be listened
 * on at EDGEFLUX_HOST (the bridge's metrics port at EDGEFLUX_METRICS_HOST, when that is set). wrangler's dev server does not say when its public port is taken: its proxy's
 * failure to listen goes to a debug log, and the launcher's health check was then answered by
 * whatever held the port — a second `npm start` on the same ports announced "Edgeflux is up" with
 * the first one's HTTP API beside its own bridge (or, when the bridge's ports were taken too, died
 * after the worker had started, naming a port but not the variable that sets it).
 */
import { createSocket } from 'node:dgram';
import { createServer, isIPv6 } from 'node:net';
import type { PlatformConfig } from '../shared/config';
import { urlHost } from '../shared/config';

export interface WantedPort {
  /** What listens there, as the start-up banner names it. */
  what: string;
  /** The environment variable that sets the port. */
  env: string;
  port: number;
  proto: 'tcp' | 'udp';
  /** Where it listens, when not EDGEFLUX_HOST, and the variable that says so. */
  host?: { address: string; env: string };
}

/** The ports `npm start` announces for `cfg` (0, "any free port", is never taken, so not listed). */
export function announcedPorts(cfg: PlatformConfig): WantedPort[] {
  const all: WantedPort[] = [
    { what: 'HTTP API', env: 'EDGEFLUX_HTTP_PORT', port: cfg.httpPort, proto: 'tcp' },
    { what: 'MQTT', env: 'EDGEFLUX_MQTT_PORT', port: cfg.mqttPort, proto: 'tcp' },
    { what: 'MQTT over WS', env: 'EDGEFLUX_MQTT_WS_PORT', port: cfg.mqttWsPort, proto: 'tcp' },
    ...(cfg.mqttTlsCert && cfg.mqttTlsKey ? [{ what: 'MQTT over TLS', env: 'EDGEFLUX_MQTT_TLS_PORT', port: cfg.mqttTlsPort, proto: 'tcp' as const }] : []),
    { what: 'CoAP', env: 'EDGEFLUX_COAP_PORT', port: cfg.coapPort, proto: 'udp' },
    ...(cfg.metricsPort ? [{ what: 'bridge metrics', env: 'EDGEFLUX_METRICS_PORT', port: cfg.metricsPort, proto: 'tcp' as const, ...(cfg.metricsHost !== cfg.host ? { host: { address: cfg.metricsHost, env: 'EDGEFLUX_METRICS_HOST' } } : {}) }] : []),
  ];
  return all.filter((w) => w.port !== 0);
}

/** Listens on `host`:`port` for a moment: null if it could, else the error. */
function tryListen(host: string, w: WantedPort): Promise<NodeJS.ErrnoException | null> {
  return new Promise((done) => {
    if (w.proto === 'udp') {
      const s = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
      s.once('error', (e) => {
        s.close();
        done(e);
      });
      s.bind(w.port, host, () => s.close(() => done(null)));
      return;
    }
    const s = createServer();
    s.once('error', (e: NodeJS.ErrnoException) => done(e));
    s.listen({ port: w.port, host, exclusive: true }, () => s.close(() => done(null)));
  });
}

/** One line per port in `wanted` that cannot be listened on at `host`, saying which variable to change. */
export async function portProblems(host: string, wanted: WantedPort[]): Promise<string[]> {
  const problems: string[] = [];
  // Two variables set to one port pass the listen test one at a time; the second listener would fail later, unnamed.
  const first = new Map<string, WantedPort>();
  for (const w of wanted) {
    const key = `${w.proto} ${w.port}`;
    const other = first.get(key);
    if (other) problems.push(`${other.env} and ${w.env} are both ${w.port}${w.proto === 'udp' ? '/udp' : ''}: ${other.what} and ${w.what} need a port each`);
    else first.set(key, w);
  }
  for (const w of wanted) {
    const at = w.host?.address ?? host;
    const e = await tryListen(at, w);
    if (!e) continue;
    const where = `${urlHost(at)}:${w.port}${w.proto === 'udp' ? '/udp' : ''}`;
    problems.push(
      e.code === 'EADDRINUSE'
        ? `${w.what} port ${where} is already in use (another npm start?): stop what holds it, or set ${w.env} to a free port`
        : `${w.what} port ${where} cannot be listened on (${e.code ?? e.message}): set ${w.env} to another port, or ${w.host?.env ?? 'EDGEFLUX_HOST'} to an address of this machine`,
    );
  }
  return problems;
}
