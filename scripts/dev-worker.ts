/**
 * The worker on local workerd for `npm start`: wrangler's dev server — the same as `wrangler dev`
 * (bundling, reload on change, .dev.vars, local D1/R2/Durable Objects persisted under the state
 * directory) — started through wrangler's API so that the launcher also learns where the worker
 * itself listens.
 *
 * `wrangler dev` runs two workerd processes: a proxy worker on the public port, which holds
 * requests while the worker reloads (good for browsers and curl), and the worker behind it on a
 * port of its own. Every socket through the proxy costs it a relay and several file descriptors:
 * with a few thousand bridge sockets (a link per channel, a session socket per MQTT connection) the
 * proxy ran out of descriptors. The bridge is a service, not a browser, and reconnects on its own
 * across a reload, so it dials the worker directly.
 *
 * wrangler's proxy worker (wrangler 4.86, templates/startDevWorker/ProxyWorker.ts) has a flaw this
 * file works around: when forwarding a GET fails with a network error (a pooled keep-alive
 * connection the worker had just closed), it compares the request's full URL with the worker's
 * origin, concludes the worker is being replaced, and parks the request until the next `play`
 * message — which only a reload sends. With nothing reloading, the request waits forever (and a
 * client whose every request got parked never sends another to wake the queue). Reproduced here:
 * 16 parallel GETs, ~4.9 s idle (the worker's keep-alive timeout is 5 s), 16 GETs again → 15 of
 * them hung until the client gave up (20 s). So while no reload is under way the proxy is sent
 * `play` again every second: in the same sweep the parked GETs were answered in 0.8–1.1 s.
 * (workers-sdk compares origins upstream, in versions that need a newer Node.)
 *
 * The proxy does not forward to the worker itself but to scripts/worker-relay.ts, which forwards to
 * the worker: between two workerd processes, kj's equal keep-alive timeouts (5 s both) made the proxy
 * send a request now and then on a connection the worker was closing — a POST then got HTTP 503
 * "Your worker restarted mid-request" with nothing restarting (the relay's header says more).
 *
 * Every port this process listens on is on loopback except the one public port, --ip:--port: with a
 * loopback --ip wrangler's proxy serves it; with any other (0.0.0.0 in a container) the proxy and
 * miniflare's loopback server behind it listen on 127.0.0.1 and scripts/public-port.ts forwards
 * --ip:--port to the proxy (that file says why).
 *
 * Arguments: --ip, --port, --persist-to. Prints `EDGEFLUX_WORKER_RELAY <address> <port>` once, where
 * the relay's socket is bound (loopback, whatever --ip says), and `EDGEFLUX_WORKER_DIRECT <url>` when
 * the worker is ready, and again after a reload if its address changed.
 */
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { unstable_DevEnv as DevEnv } from 'wrangler';
import { isLoopbackHost, startPublicPort, type PublicPort } from './public-port';
import { startWorkerRelay } from './worker-relay';

const { values } = parseArgs({ options: { ip: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '8787' }, 'persist-to': { type: 'string' } } });

// The miniflare wrangler itself runs (its own copy, not the one the vitest plugin hoists).
const { getNodeCompat } = createRequire(createRequire(import.meta.url).resolve('wrangler'))('miniflare') as typeof import('miniflare');

const env = new DevEnv();
type ProxyData = Parameters<typeof env.proxy.onReloadComplete>[0]['proxyData'];
let announced = '';
/** What the proxy was last told to forward to; unset from a reload's start until it completes. */
let playing: ProxyData | undefined;
for (const pause of ['onConfigUpdate', 'onBundleStart', 'onReloadStart'] as const) {
  const original = env.proxy[pause].bind(env.proxy) as (event: never) => void;
  env.proxy[pause] = (event: never) => {
    playing = undefined;
    original(event);
  };
}
/** The worker's own address, where the relay forwards the proxy's requests. */
let worker: URL | undefined;
// Only wrangler's proxy, on this machine, talks to it: loopback whatever address the platform serves on.
const relay = await startWorkerRelay(() => worker, '127.0.0.1', process.env.EDGEFLUX_LAUNCH);
console.log(`EDGEFLUX_WORKER_RELAY ${relay.bound.address} ${relay.bound.port}`);
// Every finished (re)load passes through the proxy controller with the worker's own address: the
// bridge is told that one, the proxy the relay's.
const onReloadComplete = env.proxy.onReloadComplete.bind(env.proxy);
env.proxy.onReloadComplete = (event) => {
  const u = event.proxyData.userWorkerUrl;
  const url = u ? `${u.protocol}//${u.hostname}:${u.port}` : '';
  if (url && url !== announced) {
    announced = url;
    console.log(`EDGEFLUX_WORKER_DIRECT ${url}`);
  }
  if (url) worker = new URL(url);
  const relayed = { ...event, proxyData: { ...event.proxyData, userWorkerUrl: relay.origin } };
  playing = relayed.proxyData;
  onReloadComplete(relayed);
};
// The proxy controller's messages go through one queue in order, so a `play` sent here never
// overtakes a `pause` sent after it. Live reload is off (`dev.liveReload`), so a `play` reloads no
// browser tab.
const replay = setInterval(() => {
  if (playing) void env.proxy.sendMessageToProxyWorker({ type: 'play', proxyData: playing });
}, 1000);
replay.unref();

// wrangler's proxy listens where its miniflare's loopback server does (see public-port.ts): on
// loopback. A loopback --ip is served by the proxy itself; any other by a TCP forwarder to it.
const forwarded = !isLoopbackHost(values.ip);
const devServer = await env.startWorker({
  config: 'wrangler.toml',
  dev: {
    server: forwarded ? { hostname: '127.0.0.1', port: 0 } : { hostname: values.ip, port: Number(values.port) },
    // wrangler's inspector proxy subscribes to the worker's Runtime, Debugger and Network events:
    // a cost on every request and message, so it is on only when asked for (a port, 0 for any).
    inspector: process.env.EDGEFLUX_INSPECTOR_PORT ? { hostname: '127.0.0.1', port: Number(process.env.EDGEFLUX_INSPECTOR_PORT) } : false,
    ...(values['persist-to'] ? { persist: values['persist-to'] } : {}),
    watch: true,
    logLevel: (process.env.WRANGLER_LOG as 'warn' | undefined) ?? 'warn',
  },
  // `wrangler dev` and `wrangler deploy` bundle with the Node.js compatibility mode wrangler.toml's
  // date and flags give (nodejs_compat: "v2"); startWorker leaves it unset unless told. The bundle
  // is the same today (the worker imports only node:zlib, left external either way), but esbuild
  // warned at every start that node:zlib needs the flag it has, and the mode now matches deploy's.
  build: { nodejsCompatMode: (config) => getNodeCompat(config.compatibility_date, config.compatibility_flags).mode },
});
await devServer.ready;
let publicPort: PublicPort | undefined;
if (forwarded) {
  // miniflare keeps a socket's port across option changes when it was asked for any (0), so the
  // proxy's loopback port read once here stays right across reloads.
  const proxy = await devServer.url;
  const target = { host: proxy.hostname, port: Number(proxy.port) };
  try {
    publicPort = await startPublicPort(values.ip, Number(values.port), () => target);
  } catch (e) {
    console.error(`the public port ${values.ip}:${values.port} cannot be opened: ${e instanceof Error ? e.message : String(e)}`);
    await Promise.allSettled([devServer.dispose(), relay.close()]);
    process.exit(1);
  }
}

const stop = () => {
  clearInterval(replay);
  void Promise.allSettled([devServer.dispose(), relay.close(), publicPort?.close()]).finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 5000).unref();
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
