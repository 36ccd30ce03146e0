import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { root, startPlatform, type Platform } from './processes';

/**
 * The README's walkthrough, as a newcomer pastes it into bash: curl and jq, then mosquitto_sub /
 * mosquitto_pub and libcoap's coap-client. The blocks are read from README.md itself, so the text
 * cannot drift from what works. Changed only as a newcomer's machine differs from a test's: the
 * platform's free ports instead of the defaults; the background subscriber's output goes to a file,
 * and the next command waits for its SUBACK (a person typing the next command leaves it that
 * time without thinking of it); a 4 s observation instead of 60; and 5 s instead of 2 for the message to reach D1, since a test
 * machine is busier than a newcomer's. curl fails on an HTTP error and gives up after 30 s.
 */
const readme = readFileSync(join(root, 'README.md'), 'utf8');
let platform: Platform;
const state = mkdtempSync(join(tmpdir(), 'edgeflux-readme-'));
/** A .curlrc: every answer on its own line, an HTTP error fails the command, no command hangs. */
const curlHome = mkdtempSync(join(tmpdir(), 'edgeflux-readme-curl-'));
writeFileSync(join(curlHome, '.curlrc'), 'write-out = "\\n"\nfail-with-body\nmax-time = 30\n');
let shell: ChildProcess | undefined;

/** The `n`th ```sh block after the line `after`. */
function shBlock(after: string, n: number): string {
  const start = readme.indexOf(after);
  if (start < 0) throw new Error(`README.md: no "${after}"`);
  const blocks = [...readme.slice(start).matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  if (!blocks[n]) throw new Error(`README.md: no sh block ${n} after "${after}"`);
  return blocks[n];
}

/** `text` with `pattern` replaced; a rewrite that no longer matches the README is an error, not a no-op. */
function rewrite(text: string, pattern: RegExp | string, by: string): string {
  const out = typeof pattern === 'string' ? text.replaceAll(pattern, by) : text.replace(pattern, by);
  if (out === text) throw new Error(`README.md changed: nothing matches ${String(pattern)}; update this test`);
  return out;
}

function asOnThisMachine(blocks: string[], p: Platform): string[] {
  const [curl, devices, senml] = blocks as [string, string, string];
  let d = rewrite(devices, /(mosquitto_sub) -h 127\.0\.0\.1 /g, `$1 -h 127.0.0.1 -p ${p.mqttPort} `);
  d = rewrite(d, /(mosquitto_pub) -h 127\.0\.0\.1 /g, `$1 -h 127.0.0.1 -p ${p.mqttPort} `);
  d = rewrite(d, /^(mosquitto_sub .*?)[ \t]+&[ \t]*$/m, 'stdbuf -oL $1 -d > "$SUBLOG" &\nfor i in $(seq 300); do grep -q "received SUBACK" "$SUBLOG" && break; sleep 0.1; done');
  d = rewrite(d, 'coap://127.0.0.1/', `coap://127.0.0.1:${p.coapPort}/`);
  d = rewrite(d, /coap-client-notls -s 60 /g, 'coap-client-notls -s 4 ');
  let s = rewrite(senml, /(mosquitto_pub) -h 127\.0\.0\.1 /g, `$1 -h 127.0.0.1 -p ${p.mqttPort} `);
  s = rewrite(s, /^sleep 2\b/m, 'sleep 5');
  return [rewrite(curl, 'http://127.0.0.1:8787', p.url), d, s];
}

function bash(script: string): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    // Its own process group, so that afterAll can stop whatever it left running.
    const child = spawn('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CURL_HOME: curlHome }, detached: true });
    shell = child;
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

beforeAll(async () => {
  platform = await startPlatform({ EDGEFLUX_STATE_DIR: state });
}, 120_000);

afterAll(async () => {
  if (shell?.pid !== undefined) {
    try {
      process.kill(-shell.pid, 'SIGKILL');
    } catch {
      /* finished */
    }
  }
  await platform?.stop();
  rmSync(state, { recursive: true, force: true });
  rmSync(curlHome, { recursive: true, force: true });
});

it('the README walkthrough works as written: curl, mosquitto_sub/pub, coap-client, and the SenML query', async () => {
  const blocks = [0, 1, 2].map((n) => shBlock('## Walkthrough with curl', n));
  // Every command's failure fails the script; the background subscriber is stopped at the end.
  const script = [
    'set -eo pipefail',
    'SUBLOG=$(mktemp)',
    "trap 'kill $(jobs -p) 2>/dev/null || true; rm -f \"$SUBLOG\"' EXIT",
    ...asOnThisMachine(blocks, platform),
    'sleep 1', // the subscriber writes what arrived last
    'cat "$SUBLOG"',
    'echo "CHANNEL=$CHANNEL"',
  ].join('\n');
  const r = await bash(script);
  expect(r.code, `${r.out}\n${r.err}`).toBe(0);
  const channel = /^CHANNEL=(\S+)$/m.exec(r.out)?.[1];
  expect(channel, r.out).toMatch(/^[0-9a-f-]{36}$/);
  const lines = r.out.split('\n');
  // The dashboard's scoped API key (shown once), then the HTTP publish: 202 with the channel's first seq.
  expect(lines.some((l) => /^\{"id":"[^"]+","key":"ey[^"]+"/.test(l)), r.out).toBe(true);
  expect(lines.some((l) => /^\{"seq":1,"created":\d+/.test(l)), r.out).toBe(true);
  // mosquitto_sub -v saw the MQTT publish and the CoAP POST, topic then payload.
  expect(lines).toContain(`channels/${channel}/messages/lab hello`);
  expect(lines).toContain(`channels/${channel}/messages/lab [{"n":"temp","v":22.5}]`);
  // …and the SenML one sent after the channel's defaultContentType was set.
  expect(lines).toContain(`channels/${channel}/messages/lab [{"n":"temp","u":"Cel","v":21.5}]`);
  // The query a few seconds later returns that message's record, resolved, beside the earlier ones.
  const query = lines.find((l) => l.startsWith('{"total":'));
  expect(query, r.out).toBeTruthy();
  const body = JSON.parse(query!) as { total: number; items: { name: string; value?: number; unit?: string; subtopic: string }[] };
  expect(body.items).toContainEqual(expect.objectContaining({ name: 'temp', value: 21.5, unit: 'Cel', subtopic: 'lab' }));
  expect(body.items).toContainEqual(expect.objectContaining({ name: 'temp', value: 22.5, subtopic: 'lab' })); // the CoAP one
  expect(body.items).toContainEqual(expect.objectContaining({ name: 'thermo-1/temp', value: 21.5, unit: 'Cel', subtopic: '' })); // the HTTP one
}, 120_000);
