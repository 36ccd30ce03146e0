/**
 * The one config loader for the processes Edgeflux runs outside workerd (the launcher and the bridge).
 * Everything comes from environment variables with local-development defaults; the worker itself is
 * configured by wrangler.toml vars and secrets.
 */
export interface PlatformConfig {
  /** Interface every local listener binds to. */
  host: string;
  httpPort: number;
  mqttPort: number;
  mqttTlsPort: number;
  /** MQTT over WebSocket (path /mqtt) for browsers. */
  mqttWsPort: number;
  /** PEM files for MQTT over TLS; the TLS listener starts when both are set (one alone is an error). */
  mqttTlsCert: string | undefined;
  mqttTlsKey: string | undefined;
  coapPort: number;
  /** Where local D1/R2/Durable Object state is persisted, so a restart keeps data. */
  stateDir: string;
  /** Base URL of the HTTP worker the bridge talks to. */
  workerUrl: string;
  /** The bridge's service credential (the worker's BRIDGE_SECRET), when set in the environment. */
  bridgeSecret: string | undefined;
  /** Overrides of the MQTT front-end's limits (bridge/mqtt/limits.ts), from EDGEFLUX_MQTT_LIMITS as a JSON object of numbers. */
  mqttLimits: Record<string, number>;
  /** Where MQTT sessions live: `platform` (session actors; survive bridge restarts, takeover across bridges) or `memory` (this process only). EDGEFLUX_MQTT_SESSIONS. */
  mqttSessions: 'platform' | 'memory';
  /** This bridge's name in presence records (EDGEFLUX_BRIDGE_ID); the bridge defaults it to host:MQTT port. Keep it stable across restarts. */
  bridgeId: string | undefined;
  /** The bridge's health and metrics port (EDGEFLUX_METRICS_PORT: /healthz, /readyz, /metrics); none when unset. */
  metricsPort: number | undefined;
  /** Where that port listens (EDGEFLUX_METRICS_HOST; default `host`): e.g. 127.0.0.1 or an internal interface while devices reach 0.0.0.0. */
  metricsHost: string;
}

type Vars = Record<string, string | undefined>;

function port(vars: Vars, name: string, fallback: number): number {
  const raw = vars[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`${name} must be a port number (0-65535), got ${JSON.stringify(raw)}`);
  return n;
}

function numbers(vars: Vars, name: string): Record<string, number> {
  const raw = vars[name];
  if (raw === undefined || raw === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new Error(`${name} must be a JSON object, got ${JSON.stringify(raw)}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${name} must be a JSON object`);
  for (const [k, n] of Object.entries(v)) if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) throw new Error(`${name}.${k} must be a non-negative number`);
  return v as Record<string, number>;
}

function sessions(raw: string | undefined): 'platform' | 'memory' {
  if (raw === undefined || raw === '' || raw === 'platform') return 'platform';
  if (raw === 'memory') return 'memory';
  throw new Error(`EDGEFLUX_MQTT_SESSIONS must be platform or memory, got ${JSON.stringify(raw)}`);
}

/** `host` as it is written in a URL: an IPv6 literal (`::`, `::1`, `fd00::2`) in brackets (RFC 3986 §3.2.2). */
export function urlHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/**
 * The TLS certificate and key files: both or neither. One alone used to leave MQTT over TLS off with
 * nothing said (a misspelt EDGEFLUX_MQTT_TLS_KEY, and devices could not connect over TLS).
 */
function tlsFiles(vars: Vars): { cert: string | undefined; key: string | undefined } {
  const cert = vars.EDGEFLUX_MQTT_TLS_CERT || undefined;
  const key = vars.EDGEFLUX_MQTT_TLS_KEY || undefined;
  if (cert && !key) throw new Error('EDGEFLUX_MQTT_TLS_CERT is set but EDGEFLUX_MQTT_TLS_KEY is not: MQTT over TLS needs both PEM files (or neither, for no TLS)');
  if (key && !cert) throw new Error('EDGEFLUX_MQTT_TLS_KEY is set but EDGEFLUX_MQTT_TLS_CERT is not: MQTT over TLS needs both PEM files (or neither, for no TLS)');
  return { cert, key };
}

export function loadConfig(vars: Vars): PlatformConfig {
  const host = vars.EDGEFLUX_HOST || '127.0.0.1';
  const httpPort = port(vars, 'EDGEFLUX_HTTP_PORT', 8787);
  const tls = tlsFiles(vars);
  return {
    host,
    httpPort,
    mqttPort: port(vars, 'EDGEFLUX_MQTT_PORT', 1883),
    mqttTlsPort: port(vars, 'EDGEFLUX_MQTT_TLS_PORT', 8883),
    mqttWsPort: port(vars, 'EDGEFLUX_MQTT_WS_PORT', 8083),
    mqttTlsCert: tls.cert,
    mqttTlsKey: tls.key,
    coapPort: port(vars, 'EDGEFLUX_COAP_PORT', 5683),
    stateDir: vars.EDGEFLUX_STATE_DIR || '.edgeflux/state',
    workerUrl: vars.EDGEFLUX_WORKER_URL || `http://${urlHost(host)}:${httpPort}`,
    bridgeSecret: vars.EDGEFLUX_BRIDGE_SECRET || vars.BRIDGE_SECRET || undefined,
    mqttLimits: numbers(vars, 'EDGEFLUX_MQTT_LIMITS'),
    mqttSessions: sessions(vars.EDGEFLUX_MQTT_SESSIONS),
    bridgeId: vars.EDGEFLUX_BRIDGE_ID || undefined,
    metricsPort: vars.EDGEFLUX_METRICS_PORT ? port(vars, 'EDGEFLUX_METRICS_PORT', 0) : undefined,
    metricsHost: vars.EDGEFLUX_METRICS_HOST || host,
  };
}
