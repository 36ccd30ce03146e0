/**
 * `npm start`: the whole platform on this machine, offline.
 *   0. checks that every port it will announce is free on EDGEFLUX_HOST (the metrics port on EDGEFLUX_METRICS_HOST; scripts/ports-free.ts);
 *   1. writes .dev.vars with fresh random secrets if there is none;
 *   2. applies D1 migrations to the local database (state persisted under EDGEFLUX_STATE_DIR);
 *   3. builds the web console (console/ → console/dist, served by the worker at /);
 *   4. runs wrangler's dev server (scripts/dev-worker.ts: real workerd — HTTP worker, channel
 *      actors, local D1 and R2 — as `wrangler dev` does);
 *   5. starts the bridge (bridge/main.ts: MQTT and CoAP), which reaches the worker directly, not
 *      through wrangler's proxy, and is told on stdin where the worker moved after a reload;
 *   6. prints where everything is, and stops everything on Ctrl-C.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { networkInterfaces } from 'node:os';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { loadConfig, urlHost } from '../shared/config';
import { buildConsole } from './console-build';
import { reachableAddresses } from './addresses';
import { announcedPorts, portProblems } from './ports-free';
import { LAUNCH_HEADER } from './worker-relay';
import { tlsFiles } from '../bridge/tls-files';

const root = resolve(import.meta.dirname, '..');
// A bad variable is the user's to fix, said in one line as every other failure here, not a stack trace.
const cfg = (() => {
  try {
    return loadConfig(process.env);
  } catch (e) {
    console.error(`npm start failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  }
})();
const wranglerBin = createRequire(import.meta.url).resolve('wrangler/bin/wrangler.js');
// Offline by design: no telemetry, no Request.cf download, no update check.
/** This launch's mark on its own worker's /health answers (waitForHealth). */
const LAUNCH = randomBytes(12).toString('hex');
const childEnv = { ...process.env, EDGEFLUX_LAUNCH: LAUNCH, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_LOG: process.env.WRANGLER_LOG ?? 'warn', NO_UPDATE_NOTIFIER: '1' };
const children: ChildProcess[] = [];

function ensureSecrets(): void {
  const file = resolve(root, '.dev.vars');
  if (existsSync(file)) return;
  const secret = () => randomBytes(32).toString('base64url');
  writeFileSync(file, `# Written by npm start; local development only.\nJWT_SECRET=${secret()}\nBRIDGE_SECRET=${secret()}\n`, { mode: 0o600 });
  console.log('wrote .dev.vars with fresh local secrets');
}

function migrate(): void {
  const r = spawnSync(process.execPath, [wranglerBin, 'd1', 'migrations', 'apply', 'DB', '--local', '--persist-to', cfg.stateDir], {
    cwd: root,
    env: { ...childEnv, CI: 'true', WRANGLER_LOG: 'log' }, // non-interactive: apply without asking
    encoding: 'utf8',
  });
  if (r.status !== 0) {
    process.stderr.write(r.stdout + r.stderr);
    throw new Error('applying D1 migrations failed');
  }
  console.log(/No migrations to apply/i.test(r.stdout + r.stderr) ? 'D1 schema is up to date' : 'applied pending D1 migrations');
}

/**
 * Waits for `/health` answered by this launch's own worker: through its relay, which sets
 * LAUNCH_HEADER to LAUNCH. Another process that took the port after the free-port check answers
 * without it (wrangler's proxy, unable to listen, says nothing), and is named rather than announced.
 */
async function waitForHealth(url: string, child: ChildProcess, direct: Promise<string>, timeoutMs = 90_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let stranger = 0;
  // Once the dev server has said where the worker is, its proxy serves: any answer without our mark is another process's.
  let workerUp = false;
  void direct.then(() => (workerUp = true));
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`the worker's dev server exited with code ${child.exitCode}`);
    const res = await fetch(`${url}/health`).then(
      async (r) => (await r.arrayBuffer(), r),
      () => null, // not up yet
    );
    if (res?.headers.get(LAUNCH_HEADER) === LAUNCH) {
      if (res.ok) return;
    } else if (res && (res.ok || workerUp) && ++stranger >= 8) {
      // ~2 s of answers that are not ours — good ones, or any once our worker is up (our proxy's own errors while it loads are not counted): it never got the port.
      throw new Error(`${url} is answered by another process (it took the port after npm start checked it was free): stop it, or set EDGEFLUX_HTTP_PORT to a free port`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`worker did not answer ${url}/health within ${timeoutMs / 1000}s`);
}

/** The bridge runs on Node (default), Bun or Deno: EDGEFLUX_BRIDGE_RUNTIME. */
function bridgeCommand(runtime: string): string[] {
  const main = resolve(root, 'bridge/main.ts');
  const bin = (name: string) => resolve(root, 'node_modules/.bin', name);
  switch (runtime) {
    case 'node':
      return [process.execPath, '--import', 'tsx', main];
    case 'bun':
      return [bin('bun'), main];
    case 'deno':
      // Bare npm imports resolve from node_modules; extensionless relative imports need sloppy imports.
      return [bin('deno'), 'run', '-A', '--unstable-sloppy-imports', main];
    default:
      throw new Error(`EDGEFLUX_BRIDGE_RUNTIME must be node, bun or deno, not ${JSON.stringify(runtime)}`);
  }
}

/** Copies a child's stdout to ours line by line, except lines matching `signal`: their first group goes to `on`. */
function passLines(child: ChildProcess, signal: RegExp, on: (value: string) => void): void {
  if (!child.stdout) return;
  createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (line) => {
    const m = signal.exec(line);
    if (m?.[1] !== undefined) on(m[1]);
    else process.stdout.write(`${line}\n`);
  });
}

/**
 * Starts bridge/main.ts; `ready` resolves with its EDGEFLUX_BRIDGE_READY line (its listeners). Its
 * stdin stays open: the launcher writes `EDGEFLUX_WORKER_URL <url>` there when the worker moves.
 */
function startBridge(workerUrl: string): { child: ChildProcess; ready: Promise<Record<string, string>> } {
  const [cmd, ...args] = bridgeCommand(process.env.EDGEFLUX_BRIDGE_RUNTIME ?? 'node');
  const b = spawn(cmd!, args, {
    cwd: root,
    env: { ...childEnv, EDGEFLUX_WORKER_URL: workerUrl, EDGEFLUX_WORKER_URL_UPDATES: 'stdin' },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  children.push(b);
  b.stdin?.on('error', () => undefined); // a bridge that is gone reads nothing: its exit is handled below
  b.on('exit', (code) => {
    console.error(`bridge exited (${code ?? 'signal'})`);
    stopAll(code || 1);
  });
  const ready = new Promise<Record<string, string>>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('the bridge did not report ready within 30s')), 30_000);
    passLines(b, /^EDGEFLUX_BRIDGE_READY (.*)$/, (listeners) => {
      clearTimeout(timer);
      ok(JSON.parse(listeners) as Record<string, string>);
    });
  });
  return { child: b, ready };
}

function stopAll(code: number): never {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  process.exit(code);
}

/**
 * Runs scripts/dev-worker.ts (wrangler's dev server). Its output goes to ours; it resolves with the
 * worker's own address and calls `moved` when a reload gives the worker a new one.
 */
function startWorker(moved: (url: string) => void): { child: ChildProcess; direct: Promise<string> } {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', resolve(root, 'scripts/dev-worker.ts'), '--ip', cfg.host, '--port', String(cfg.httpPort), '--persist-to', cfg.stateDir],
    { cwd: root, env: childEnv, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const direct = new Promise<string>((ok) => {
    let announced = '';
    passLines(child, /^EDGEFLUX_WORKER_DIRECT (\S+)$/, (url) => {
      if (announced) console.log(`the worker reloaded, now at ${url}`);
      announced = url;
      moved(url);
      ok(url);
    });
  });
  return { child, direct };
}

async function main(): Promise<void> {
  const taken = await portProblems(cfg.host, announcedPorts(cfg));
  if (taken.length) throw new Error(`cannot listen where asked:\n  ${taken.join('\n  ')}`);
  tlsFiles(cfg); // a wrong TLS file is said now, not after the worker and the other listeners are up
  ensureSecrets();
  migrate();
  await buildConsole();
  let bridge: ChildProcess | undefined;
  const { child: worker, direct } = startWorker((url) => bridge?.stdin?.write(`EDGEFLUX_WORKER_URL ${url}\n`));
  children.push(worker);
  worker.on('exit', (code) => {
    console.error(`the worker's dev server exited (${code ?? 'signal'})`);
    stopAll(code ?? 1);
  });
  const base = `http://${urlHost(cfg.host)}:${cfg.httpPort}`;
  await waitForHealth(base, worker, direct);
  // The dev server announces the worker's own address before it serves the public port.
  const directUrl = await Promise.race([direct, new Promise<null>((ok) => setTimeout(() => ok(null), 10_000))]);
  if (!directUrl) throw new Error("the worker's dev server did not say where the worker listens");

  const started = startBridge(directUrl);
  bridge = started.child;
  const listeners = await started.ready;
  const rows: [string, string][] = [
    ['Console', `${base}/`],
    ['HTTP API', base],
    ['WebSocket', `ws://${urlHost(cfg.host)}:${cfg.httpPort}/channels/{id}/messages`],
    ['OpenAPI', `${base}/openapi.json`],
    ['API reference', `${base}/docs`],
    ['MQTT', listeners.mqtt ?? 'not served by this bridge build'],
    ['MQTT over WS', listeners['mqtt-ws'] ?? 'off'],
    ['MQTT over TLS', listeners['mqtt-tls'] ?? 'off (set EDGEFLUX_MQTT_TLS_CERT and _KEY)'],
    ['CoAP', listeners.coap ?? 'not served by this bridge build'],
    ...(listeners.metrics ? [['Bridge metrics', `${listeners.metrics} (and /healthz, /readyz)`] as [string, string]] : []),
    ['State', resolve(root, cfg.stateDir)],
  ];
  const reachable = reachableAddresses(cfg.host, networkInterfaces());
  if (reachable.length) rows.splice(1, 0, ['Reachable as', `${reachable.join(', ')} (listening on every interface; 127.0.0.1 on this machine)`]);
  console.log(`\nEdgeflux is up (Ctrl-C stops everything)\n${rows.map(([k, v]) => `  ${k.padEnd(14)} ${v}`).join('\n')}\nEDGEFLUX_READY ${base}\n`);
}

process.on('SIGINT', () => stopAll(0));
process.on('SIGTERM', () => stopAll(0));
main().catch((e: unknown) => {
  console.error(`npm start failed: ${e instanceof Error ? e.message : String(e)}`);
  stopAll(1);
});
