import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { root } from './processes';

/**
 * bridge/Dockerfile, followed step by step with no Docker engine: its build stage in a folder
 * holding only what the stage COPYs, its runtime stage in a folder holding only the bundle, with the
 * image's ENV and CMD. `npm ci` itself is not run (no registry in tests): node_modules is linked in,
 * and what npm ci would run after installing — the package's own `prepare` script, unless
 * `--ignore-scripts` — is run as npm ci would.
 */
interface Stage {
  copies: { from: string | null; sources: string[]; dest: string }[];
  runs: string[];
  env: Record<string, string>;
  cmd: string[];
}

function readDockerfile(): Stage[] {
  const stages: Stage[] = [];
  for (const raw of readFileSync(join(root, 'bridge/Dockerfile'), 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [word, ...rest] = line.split(/\s+/);
    const stage = stages.at(-1);
    if (word === 'FROM') stages.push({ copies: [], runs: [], env: {}, cmd: [] });
    else if (word === 'COPY') {
      const from = rest[0]?.startsWith('--from=') ? rest.shift()!.slice('--from='.length) : null;
      stage!.copies.push({ from, sources: rest.slice(0, -1), dest: rest.at(-1)! });
    } else if (word === 'RUN') stage!.runs.push(rest.join(' '));
    else if (word === 'ENV') for (const pair of rest) stage!.env[pair.slice(0, pair.indexOf('='))] = pair.slice(pair.indexOf('=') + 1);
    else if (word === 'CMD') stage!.cmd = JSON.parse(rest.join(' ')) as string[];
  }
  return stages;
}

const dir = mkdtempSync(join(tmpdir(), 'edgeflux-bundle-'));
const [build, runtime] = readDockerfile();
const src = join(dir, 'src');
const app = join(dir, 'app');
const bundle = join(app, 'bridge.mjs');

beforeAll(() => {
  mkdirSync(src);
  for (const c of build!.copies) {
    for (const s of c.sources) {
      const to = c.dest.endsWith('/') ? join(src, c.dest, s.split('/').at(-1)!) : join(src, c.dest);
      mkdirSync(dirname(to), { recursive: true });
      cpSync(join(root, s), to, { recursive: true });
    }
  }
  mkdirSync(app);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('builds the bundle as the Dockerfile does, from only the files it copies, without warnings', () => {
  const steps = build!.runs;
  expect(steps.map((s) => s.split(' ').slice(0, 2).join(' '))).toEqual(['npm ci', 'npm run']);
  symlinkSync(join(root, 'node_modules'), join(src, 'node_modules'));
  const npm = (args: string[]) => spawnSync('npm', args, { cwd: src, encoding: 'utf8', env: { ...process.env, npm_config_update_notifier: 'false' } });
  // npm ci runs the root package's `prepare` after installing, unless told not to.
  if (!steps[0]!.includes('--ignore-scripts')) {
    const prepare = npm(['run', '--if-present', 'prepare']);
    expect(prepare.status, `npm ci's prepare, in the image's build stage:\n${prepare.stdout}${prepare.stderr}`).toBe(0);
  }
  const made = npm(steps[1]!.split(' ').slice(1));
  expect(made.status, made.stderr).toBe(0);
  // esbuild runs at --log-level=warning: a warning (a tsconfig it cannot find) is printed. npm's own
  // `npm warn …` lines (EBADENGINE on another Node, a config key) are about this machine, not the build.
  expect(npmWarningsDropped(made.stderr)).toBe('');
  const copy = runtime!.copies.find((c) => c.from === 'build')!;
  expect(copy.dest).toBe('./bridge.mjs');
  cpSync(join(src, copy.sources[0]!.replace(/^\/src\//, '')), bundle);
  expect(statSync(bundle).size).toBeGreaterThan(10_000);
}, 120_000);

/** stderr without npm's own warning lines (`npm warn …`, `npm WARN …`); esbuild's stay. */
const npmWarningsDropped = (stderr: string): string =>
  stderr
    .split('\n')
    .filter((l) => !/^npm warn /i.test(l))
    .join('\n')
    .trim();

it('drops npm\'s warnings from the build\'s stderr, and keeps an esbuild warning', () => {
  const esbuild = '▲ [WARNING] Cannot find base config file "../tsconfig.json" [tsconfig.json]';
  expect(npmWarningsDropped('npm warn EBADENGINE Unsupported engine {\nnpm WARN config production Use `--omit=dev` instead.\n')).toBe('');
  expect(npmWarningsDropped(`npm warn EBADENGINE Unsupported engine {\n${esbuild}\n`)).toBe(esbuild);
});

/** The image's command in a folder holding only the bundle (no node_modules), with its ENV. */
function runImage(env: Record<string, string>) {
  const [cmd, ...args] = runtime!.cmd;
  expect(cmd).toBe('node');
  const child = spawn(process.execPath, args, {
    cwd: app,
    // Loopback, not the image's 0.0.0.0: a test listens on this machine only; any free port for metrics, not the image's 9464.
    env: { ...process.env, ...runtime!.env, EDGEFLUX_HOST: '127.0.0.1', EDGEFLUX_BRIDGE_SECRET: 'x', EDGEFLUX_MQTT_PORT: '0', EDGEFLUX_COAP_PORT: '0', EDGEFLUX_MQTT_WS_PORT: '0', EDGEFLUX_METRICS_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  return { child, exited, output: () => text };
}

it('starts on its own (no node_modules) and stops on SIGTERM with exit code 0', async () => {
  expect(runtime!.env).toMatchObject({ NODE_ENV: 'production', EDGEFLUX_HOST: '0.0.0.0', EDGEFLUX_METRICS_PORT: '9464' });
  const { child, exited, output } = runImage({ EDGEFLUX_WORKER_URL: 'http://127.0.0.1:9' });
  const ready = await new Promise<string>((ok, fail) => {
    const t = setTimeout(() => fail(new Error(`no ready line: ${output()}`)), 15_000);
    child.stdout.on('data', () => {
      const m = /EDGEFLUX_BRIDGE_READY (.*)/.exec(output());
      if (m?.[1]) (clearTimeout(t), ok(m[1]));
    });
  });
  const listeners = JSON.parse(ready) as Record<string, string>;
  expect(Object.keys(listeners)).toEqual(expect.arrayContaining(['coap', 'mqtt', 'mqtt-ws', 'metrics']));
  // Health and metrics from the bundle (prom-client inside it): alive, not ready — no worker answers at port 9.
  const ops = listeners.metrics!.replace(/\/metrics$/, '');
  expect((await fetch(`${ops}/healthz`)).status).toBe(200);
  const readyz = await fetch(`${ops}/readyz`);
  expect([readyz.status, await readyz.text()]).toEqual([503, 'not ready: the worker has not answered yet\n']);
  const metrics = await (await fetch(`${ops}/metrics`)).text();
  expect(metrics).toMatch(/^edgeflux_bridge_worker_up 0$/m);
  expect(metrics).toMatch(/^process_cpu_seconds_total \d/m);
  child.kill('SIGTERM');
  expect(await exited).toEqual({ code: 0, signal: null });
}, 30_000);

/**
 * In the container the bridge is PID 1, and the kernel drops any signal PID 1 has no handler for:
 * a bridge that handled SIGTERM only once it listened ignored `docker stop` while it waited for a
 * worker that did not answer, until Docker's SIGKILL. Outside a PID namespace the same gap shows as
 * the default action: killed by the signal, not an exit 0.
 */
it('handles SIGTERM from the start: while it waits for a worker that does not answer, it exits 0', async () => {
  const held: Socket[] = [];
  const silent = createServer((s) => void held.push(s)); // accepts, never answers
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const port = (silent.address() as { port: number }).port;
  try {
    const asked = new Promise<void>((r) => silent.once('connection', () => r()));
    const { child, exited, output } = runImage({ EDGEFLUX_WORKER_URL: `http://127.0.0.1:${port}` });
    await Promise.race([asked, exited]); // its startup presence reset is waiting for an answer
    child.kill('SIGTERM');
    const end = await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), 10_000))]);
    if (end === null) child.kill('SIGKILL');
    expect(end, output()).toEqual({ code: 0, signal: null });
    expect(output()).not.toContain('EDGEFLUX_BRIDGE_READY');
  } finally {
    for (const s of held) s.destroy();
    silent.close();
  }
}, 30_000);

/**
 * A SIGTERM while the listeners are still opening (scripts/sigterm-on-listen.mjs makes it arrive then,
 * with a real signal): the bridge closes what opened late and exits 0, and never says it is ready —
 * before, the listeners opening went on and EDGEFLUX_BRIDGE_READY was printed after "closing".
 */
it('a SIGTERM while its listeners open: it exits 0 without printing EDGEFLUX_BRIDGE_READY', async () => {
  const preload = join(root, 'test/node/scripts/sigterm-on-listen.mjs');
  const { exited, output } = runImage({ EDGEFLUX_WORKER_URL: 'http://127.0.0.1:9', NODE_OPTIONS: `--import ${preload}` });
  expect(await exited, output()).toEqual({ code: 0, signal: null });
  expect(output()).toContain('SIGTERM: closing');
  expect(output()).not.toContain('EDGEFLUX_BRIDGE_READY');
}, 30_000);

