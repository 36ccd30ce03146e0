import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { root } from './processes';

/** The step bridge/Dockerfile relies on: one bundled file that starts with no node_modules beside it. */
it('bundles the bridge into one file that starts on its own', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgeflux-bundle-'));
  try {
    const out = join(dir, 'bridge.mjs');
    const build = spawnSync(join(root, 'node_modules/.bin/esbuild'), ['bridge/main.ts', '--bundle', '--platform=node', '--format=esm', '--target=node20', `--outfile=${out}`, '--log-level=warning', "--banner:js=import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);"], { cwd: root, encoding: 'utf8' });
    expect(build.status, build.stderr).toBe(0);
    expect(statSync(out).size).toBeGreaterThan(10_000);
    const child = spawn(process.execPath, [out], {
      cwd: dir, // no node_modules here
      env: { ...process.env, EDGEFLUX_BRIDGE_SECRET: 'x', EDGEFLUX_WORKER_URL: 'http://127.0.0.1:9', EDGEFLUX_MQTT_PORT: '0', EDGEFLUX_COAP_PORT: '0', EDGEFLUX_MQTT_WS_PORT: '0', EDGEFLUX_METRICS_PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    const ready = await new Promise<string>((ok, fail) => {
      const t = setTimeout(() => fail(new Error(`no ready line: ${text}`)), 15_000);
      child.stdout.on('data', () => {
        const m = /EDGEFLUX_BRIDGE_READY (.*)/.exec(text);
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
    const exited = new Promise<number | null>((r) => child.once('exit', r));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
