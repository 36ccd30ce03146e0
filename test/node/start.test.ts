import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { commandLine } from '../../bench/procs';
import { loadConfig } from '../../shared/config';
import type { NetworkInterfaceInfo } from 'node:os';
import { reachableAddresses } from '../../scripts/addresses';
import { announcedPorts, portProblems } from '../../scripts/ports-free';
import { freePort, groupListeners, root, startPlatform, type Platform } from './processes';

describe('npm start', () => {
  const state = mkdtempSync(join(tmpdir(), 'edgeflux-state-'));
  let running: Platform | undefined;
  afterAll(async () => {
    await running?.stop();
    rmSync(state, { recursive: true, force: true });
  });

  it('brings the platform up with migrations applied, and a restart keeps the data', async () => {
    const port = await freePort();
    const env = { EDGEFLUX_HTTP_PORT: String(port), EDGEFLUX_STATE_DIR: state };
    running = await startPlatform(env);
    expect(running.url).toBe(`http://127.0.0.1:${port}`);
    expect(running.output()).toMatch(/OpenAPI\s+http:\/\/127\.0\.0\.1:\d+\/openapi\.json/);
    // The worker is bundled as `wrangler deploy` bundles it, with wrangler.toml's nodejs_compat: no
    // warning that node:zlib (workers/messages/body.ts) needs the flag it has.
    expect(running.output()).not.toMatch(/WARNING|nodejs_compat/);
    expect(await (await fetch(`${running.url}/health`)).json()).toEqual({ status: 'ok', d1: 'ok' });
    // On loopback (the default) wrangler's proxy workerd serves the public port itself: no forwarder
    // (scripts/public-port.ts, a Node hop) in the way.
    const http = groupListeners(running.pid).filter((l) => l.proto === 'tcp' && l.port === port);
    expect(http.map((l) => `${l.address} ${/\bworkerd serve\b/.test(commandLine(l.pid)) ? 'workerd' : commandLine(l.pid).slice(0, 80)}`)).toEqual(['127.0.0.1 workerd']);

    const creds = { email: 'restart@example.com', password: 'correct horse battery' };
    const reg = await fetch(`${running.url}/users`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(creds) });
    expect(reg.status).toBe(201);
    await running.stop();

    running = await startPlatform(env);
    expect(running.output()).toContain('D1 schema is up to date');
    const login = await fetch(`${running.url}/tokens`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(creds) });
    expect(login.status).toBe(201);
  }, 180_000);

  // wrangler's dev server says nothing when its public port is taken, and the launcher's health check
  // was answered by whatever held it: a second `npm start` on the same ports printed "Edgeflux is up"
  // with someone else's HTTP API (here a server that answers /health as the platform does).
  it('refuses to start, naming the variable to change, when a port it would announce is taken', async () => {
    const held = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok","d1":"ok"}'));
    const httpPort = await freePort();
    await new Promise<void>((ok) => held.listen(httpPort, '127.0.0.1', ok));
    const udp = createSocket('udp4');
    const coapPort = await freePort();
    await new Promise<void>((ok) => udp.bind(coapPort, '127.0.0.1', ok));
    const other = mkdtempSync(join(tmpdir(), 'edgeflux-state-'));
    try {
      const started = startPlatform({ EDGEFLUX_HTTP_PORT: String(httpPort), EDGEFLUX_COAP_PORT: String(coapPort), EDGEFLUX_STATE_DIR: other }).then(
        async (p) => (await p.stop(), `up: ${p.output()}`),
        (e: unknown) => String(e),
      );
      const said = await started;
      expect(said).toMatch(/^Error: launcher exited with 1:/);
      expect(said).not.toContain('Edgeflux is up');
      expect(said).toContain(`HTTP API port 127.0.0.1:${httpPort} is already in use (another npm start?): stop what holds it, or set EDGEFLUX_HTTP_PORT to a free port`);
      expect(said).toContain(`CoAP port 127.0.0.1:${coapPort}/udp is already in use (another npm start?): stop what holds it, or set EDGEFLUX_COAP_PORT to a free port`);
      // Checked before anything started: no migrations applied, no worker, no bridge.
      expect(said).not.toMatch(/D1 migrations|D1 schema|\[bridge\]/);
    } finally {
      held.close();
      udp.close();
      rmSync(other, { recursive: true, force: true });
    }
  }, 180_000);

  it.each([200, 404])('does not announce a port another process took after the free-port check: its /health (%i) is not this launch\'s', async (status) => {
    const port = await freePort();
    const impostor = createServer((_req, res) => res.writeHead(status, { 'content-type': 'application/json' }).end('{"status":"ok","d1":"ok"}'));
    const other = mkdtempSync(join(tmpdir(), 'edgeflux-state-'));
    const env = { ...process.env, EDGEFLUX_HTTP_PORT: String(port), EDGEFLUX_MQTT_PORT: String(await freePort()), EDGEFLUX_MQTT_WS_PORT: String(await freePort()), EDGEFLUX_COAP_PORT: String(await freePort()), EDGEFLUX_STATE_DIR: other, WRANGLER_SEND_METRICS: 'false' };
    try {
      const r = await new Promise<{ code: number | null; out: string }>((ok) => {
        const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/start.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
        let out = '';
        let took = false;
        const read = (d: Buffer) => {
          out += d.toString();
          // The check is done once migrations are applied: the port is taken only now.
          if (!took && out.includes('applied pending D1 migrations')) {
            took = true;
            impostor.listen(port, '127.0.0.1');
          }
        };
        child.stdout.on('data', read);
        child.stderr.on('data', read);
        const kill = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 120_000);
        child.on('exit', (code) => (clearTimeout(kill), ok({ code, out })));
      });
      expect(r.out).not.toContain('Edgeflux is up');
      expect(r.code).toBe(1);
      expect(r.out).toContain(`http://127.0.0.1:${port} is answered by another process (it took the port after npm start checked it was free): stop it, or set EDGEFLUX_HTTP_PORT to a free port`);
    } finally {
      impostor.close();
      rmSync(other, { recursive: true, force: true });
    }
  }, 180_000);

  it('names the machine\'s addresses when it listens on every interface (0.0.0.0 or ::), not 0.0.0.0 alone', () => {
    const nic = (address: string, family: 'IPv4' | 'IPv6', internal = false) => ({ address, family, internal, netmask: '', mac: '', cidr: null }) as NetworkInterfaceInfo;
    const interfaces = { lo: [nic('127.0.0.1', 'IPv4', true), nic('::1', 'IPv6', true)], eth0: [nic('192.0.2.10', 'IPv4'), nic('2001:db8::10', 'IPv6'), nic('fe80::1', 'IPv6')], wlan0: [nic('198.51.100.7', 'IPv4'), nic('169.254.3.4', 'IPv4')] };
    expect(reachableAddresses('0.0.0.0', interfaces)).toEqual(['192.0.2.10', '198.51.100.7']);
    expect(reachableAddresses('::', interfaces)).toEqual(['192.0.2.10', '[2001:db8::10]', '198.51.100.7']);
    expect(reachableAddresses('127.0.0.1', interfaces)).toEqual([]);
    expect(reachableAddresses('192.0.2.10', interfaces)).toEqual([]);
  });

  it('names both variables when two of them set one port (each alone would listen)', async () => {
    const port = await freePort();
    const problems = await portProblems('127.0.0.1', announcedPorts({ ...loadConfig({}), httpPort: port, mqttPort: port, mqttWsPort: 0, coapPort: port }));
    expect(problems).toEqual([`EDGEFLUX_HTTP_PORT and EDGEFLUX_MQTT_PORT are both ${port}: HTTP API and MQTT need a port each`]);
  });

  it('checks the bridge metrics port where it will listen (EDGEFLUX_METRICS_HOST), naming that variable', async () => {
    const port = await freePort();
    const held = createServer();
    await new Promise<void>((ok) => held.listen({ port, host: '::1', exclusive: true }, () => ok()));
    try {
      const cfg = loadConfig({ EDGEFLUX_HTTP_PORT: '0', EDGEFLUX_MQTT_PORT: '0', EDGEFLUX_MQTT_WS_PORT: '0', EDGEFLUX_COAP_PORT: '0', EDGEFLUX_METRICS_PORT: String(port), EDGEFLUX_METRICS_HOST: '::1' });
      expect(await portProblems(cfg.host, announcedPorts(cfg))).toEqual([`bridge metrics port [::1]:${port} is already in use (another npm start?): stop what holds it, or set EDGEFLUX_METRICS_PORT to a free port`]);
    } finally {
      await new Promise((r) => held.close(r));
    }
  });

  it.each([
    ['a TLS file that cannot be read', '/nonexistent/cert.pem', 'EDGEFLUX_MQTT_TLS_CERT=/nonexistent/cert.pem cannot be read'],
    ['TLS files that are not PEM', 'package.json', 'EDGEFLUX_MQTT_TLS_CERT=package.json and EDGEFLUX_MQTT_TLS_KEY=package.json are not a PEM certificate and its private key'],
  ])('says %s before it starts anything, naming the variables', async (_what, path, said) => {
    const r = await new Promise<{ code: number | null; out: string }>((ok) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/start.ts'], { cwd: root, env: { ...process.env, EDGEFLUX_HTTP_PORT: '0', EDGEFLUX_MQTT_PORT: '0', EDGEFLUX_MQTT_WS_PORT: '0', EDGEFLUX_COAP_PORT: '0', EDGEFLUX_MQTT_TLS_PORT: '0', EDGEFLUX_MQTT_TLS_CERT: path, EDGEFLUX_MQTT_TLS_KEY: path }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      child.on('exit', (code) => ok({ code, out }));
    });
    expect(r.code).toBe(1);
    expect(r.out).toContain(`npm start failed: ${said}`);
    expect(r.out).not.toContain('applied pending D1 migrations');
  }, 60_000);

  it('says what is wrong with a bad variable in one line, not with a stack trace', async () => {
    const r = await new Promise<{ code: number | null; out: string }>((ok) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/start.ts'], { cwd: root, env: { ...process.env, EDGEFLUX_HTTP_PORT: 'abc' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      child.on('exit', (code) => ok({ code, out }));
    });
    expect(r.code).toBe(1);
    expect(r.out).toBe('npm start failed: EDGEFLUX_HTTP_PORT must be a port number (0-65535), got "abc"\n');
  }, 60_000);

  // wrangler's proxy (the public port) pools keep-alive connections to the worker; both ends used to
  // drop an idle one after 5 s, and a request sent on one the worker was closing came back to a POST
  // as 503 "Your worker restarted mid-request" (scripts/worker-relay.ts). Here 48 POSTs at once fill
  // the pool, and 48 more reuse it just before 5 s: without the relay, 2–3 of these 6 rounds got
  // 503s (6 to 27 of 48), in every sweep tried.
  it('answers POSTs sent just as the pooled connections behind the public port turn 5 s idle, none with 503', async () => {
    running ??= await startPlatform({ EDGEFLUX_STATE_DIR: state });
    const url = running.url;
    const post = () =>
      fetch(`${url}/channels/none/messages`, { method: 'POST', headers: { 'content-type': 'application/senml+json' }, body: '[{"n":"t","v":1}]' }).then(
        async (r) => `${r.status} ${r.status === 401 ? '' : await r.text()}`.trim(),
        (e: unknown) => `failed: ${e instanceof Error ? String(e.cause ?? e.message) : String(e)}`,
      );
    const burst = () => Promise.all(Array.from({ length: 48 }, post));
    const unexpected: string[] = [];
    for (const idle of [4860, 4880, 4900, 4920, 4940, 4960]) {
      await burst();
      await new Promise((r) => setTimeout(r, idle));
      unexpected.push(...(await burst()).filter((s) => s !== '401').map((s) => `after ${idle} ms: ${s}`));
    }
    // 401: no key for a channel — the worker's answer, so the request went all the way through.
    expect(unexpected).toEqual([]);
  }, 180_000);

  // Node's server answered the relay's `Expect: 100-continue` with an interim 100, which wrangler's
  // proxy took for the answer: every such POST got 503 "Your worker restarted mid-request"
  // (scripts/worker-relay.ts). curl sends it for bodies over 1 MiB, .NET and old libcurl for any.
  it('answers a POST with Expect: 100-continue with the worker\'s own answer, not 503', async () => {
    running ??= await startPlatform({ EDGEFLUX_STATE_DIR: state });
    const { hostname, port } = new URL(running.url);
    const post = (body: Buffer) =>
      new Promise<string>((ok, fail) => {
        const req = request({ hostname, port, method: 'POST', path: '/channels/none/messages', headers: { expect: '100-continue', 'content-type': 'text/plain', 'content-length': body.length } });
        // As curl does: the body after a 100 Continue, or after a second without one.
        const send = () => req.writableEnded || req.end(body);
        const timer = setTimeout(send, 1000);
        req.on('continue', send);
        req.on('response', (res) => {
          clearTimeout(timer);
          let text = '';
          res.setEncoding('utf8').on('data', (d: string) => (text += d));
          res.on('end', () => {
            if (!req.writableEnded) req.destroy(); // answered before the body was wanted
            ok(`${res.statusCode} ${text.slice(0, 80)}`);
          });
        });
        req.on('error', fail);
      });
    // 401 (no credential): the worker read the request and answered it.
    expect(await post(Buffer.from('x'))).toMatch(/^401 .*unauthorized/);
    // Over the 1 MiB ceiling: 413 from the worker, not 503 from the proxy.
    expect(await post(Buffer.alloc(2 * 1024 * 1024))).toMatch(/^(401|413) /);
  }, 180_000);
});
