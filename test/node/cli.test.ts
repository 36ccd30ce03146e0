import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { normalApi } from '../../cli/config';
import { context } from '../../cli/context';
import { withLoginHint } from '../../cli/login-hint';
import { EdgefluxError } from '../../sdk';
import { QuerySchema } from '../../workers/query/params';
import { freePort, root, startPlatform, type Platform } from './processes';

/** The `edgeflux` CLI as a subprocess (the built bin, as `npx edgeflux` runs it) against the real local platform. */
const exec = promisify(execFile);
const BIN = join(root, 'bin/edgeflux.js');

let platform: Platform;
let home: string;
const env = () => ({ ...process.env, XDG_CONFIG_HOME: home, EDGEFLUX_API: platform.url, EDGEFLUX_ORG: '', EDGEFLUX_TOKEN: '', EDGEFLUX_DEVICE_KEY: '' });

/** Runs the CLI; resolves with its exit code and output (never rejects on a non-zero exit). */
function cli(args: string[], opts: { input?: string; env?: Record<string, string> } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((ok) => {
    const child = execFile(process.execPath, [BIN, ...args], { env: { ...env(), ...opts.env }, cwd: root, timeout: 30_000 }, (err, stdout, stderr) =>
      ok({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(opts.input ?? '');
  });
}
/** Runs the CLI with --json and parses its answer; fails the test on a non-zero exit. */
async function json<T = any>(...args: string[]): Promise<T> {
  const r = await cli([...args, '--json']);
  if (r.code !== 0) throw new Error(`edgeflux ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

beforeAll(async () => {
  // The CLI build bundles the SDK from source (dist/cli.js); sdk.test.ts builds dist/sdk.js, so the two never race.
  await exec('npm', ['run', '--silent', 'build:cli'], { cwd: root });
  home = mkdtempSync(join(tmpdir(), 'edgeflux-cli-'));
  platform = await startPlatform({});
}, 120_000);
afterAll(async () => {
  await platform?.stop();
  rmSync(home, { recursive: true, force: true });
});

const email = `cli-${Date.now()}@example.com`;
let org: string, channel: string, devices: { id: string; name: string; key: string }[];

describe('edgeflux CLI', () => {
  it('runs as `npx edgeflux` from the package', async () => {
    const { stdout } = await exec('npx', ['--offline', 'edgeflux', '--version'], { cwd: root, env: env() });
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('says what to check when nothing answers at the API address', async () => {
    const port = await freePort();
    // localhost too: there every address failing (::1 and 127.0.0.1) comes as an error with no message, only a code.
    for (const host of ['127.0.0.1', 'localhost']) {
      const r = await cli(['devices', 'list', '--org', 'o', '--token', 'x'], { env: { EDGEFLUX_API: `http://${host}:${port}` } });
      expect(r.code, host).toBe(1);
      expect(r.stderr, host).toContain(`nothing answers at http://${host}:${port}`);
      expect(r.stderr, host).toContain('is the platform running (`npm start`)? Otherwise pass --api URL or set EDGEFLUX_API');
    }
  });

  it('registers, logs in with the password on stdin, and keeps the session in the config dir', async () => {
    await json('register', '--email', email, '--password', 'correct horse battery');
    const login = await cli(['login', '--email', email, '--json'], { input: 'correct horse battery\n' });
    expect(login.code).toBe(0);
    expect(JSON.parse(login.stdout)).toMatchObject({ email, api: platform.url });
    const file = join(home, 'edgeflux', 'config.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect((await json('whoami')).email).toBe(email);
  });

  it('finds the session whichever way the API is written, and stores it in one form', async () => {
    expect(normalApi('HTTP://LocalHost:8787//')).toBe('http://localhost:8787');
    expect(normalApi('https://api.example:443/v1/')).toBe('https://api.example/v1');
    expect(normalApi('not a url/')).toBe('not a url');
    for (const api of [`${platform.url}/`, platform.url.replace('http://', 'HTTP://')]) expect((await json('--api', api, 'whoami')).email, api).toBe(email);
    const login = await cli(['--api', `${platform.url}/`, 'login', '--email', email, '--json'], { input: 'correct horse battery\n' });
    expect(login.code, login.stderr).toBe(0);
    expect(JSON.parse(login.stdout).api).toBe(platform.url);
    expect(JSON.parse(readFileSync(join(home, 'edgeflux', 'config.json'), 'utf8')).api).toBe(platform.url);
    expect((await json('whoami')).email).toBe(email);
  });

  it('creates and lists orgs, devices and channels, and connects them', async () => {
    org = (await json('orgs', 'create', 'cli-org')).id;
    expect((await json('orgs', 'list')).items.map((o: { id: string }) => o.id)).toContain(org);
    devices = await json('devices', 'create', 'thermo-1', 'thermo-2', '--metadata', '{"room":"lab"}');
    expect(devices.map((d) => d.name)).toEqual(['thermo-1', 'thermo-2']);
    expect(devices[0]!.key).toBeTruthy();
    expect((await json('devices', 'list', '--metadata', '{"room":"lab"}')).total).toBe(2);
    expect((await json('devices', 'list', '--sort', 'name', '--order', 'desc')).items.map((d: { name: string }) => d.name)).toEqual(['thermo-2', 'thermo-1']);
    channel = (await json('channels', 'create', 'telemetry')).id;
    expect((await json('channels', 'list', '--name', 'tele')).items.map((c: { id: string }) => c.id)).toEqual([channel]);
    const conns = await json('connect', '--channel', channel, '--device', `${devices[0]!.id},${devices[1]!.id}`);
    expect(conns).toHaveLength(2);
    expect((await json('channels', 'devices', channel)).total).toBe(2);
    // The connected lists and the members take the filters the API has (through the API, not the page shown).
    expect((await json('channels', 'devices', channel, '--name', 'THERMO-2')).items.map((d: { id: string }) => d.id)).toEqual([devices[1]!.id]);
    expect((await json('devices', 'channels', devices[0]!.id, '--name', 'nothing-like-it')).total).toBe(0);
    expect((await json('members', 'list', '--email', email.slice(0, 8).toUpperCase())).items.map((m: { email: string }) => m.email)).toEqual([email]);
    expect((await json('members', 'list', '--email', 'nobody-')).total).toBe(0);
  });

  it('streams with `sub` what `send` publishes (SenML flags, stdin), one envelope per line, and exits 0 on SIGINT', async () => {
    const sub = spawn(process.execPath, [BIN, 'sub', channel], { env: env(), cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    sub.stdout.on('data', (d: Buffer) => (out += d.toString()));
    sub.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => sub.once('exit', (code) => r(code)));
    try {
      for (let i = 0; i < 200 && !err.includes('subscribed'); i++) await new Promise((r) => setTimeout(r, 25));
      // The channel's subscribed frame is a status line on stderr, never an envelope on stdout.
      expect(err).toMatch(new RegExp(`^subscribed to ${channel} at seq \\d+\\n`));
      const sent = await json('send', channel, '--name', 'temp', '--value', '21.5', '--unit', 'Cel', '--subtopic', 'lab', '--device-key', devices[0]!.key);
      expect(sent.seq).toBeGreaterThan(0);
      const piped = await cli(['send', channel, '-s', 'notes', '--json', '--device-key', devices[1]!.key], { input: 'hello from stdin' });
      expect(piped.code).toBe(0);
      for (let i = 0; i < 200 && out.split('\n').length < 3; i++) await new Promise((r) => setTimeout(r, 25));
      const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines).toMatchObject([
        { seq: sent.seq, subtopic: 'lab', publisher: devices[0]!.id, contentType: 'application/senml+json' },
        { seq: sent.seq + 1, subtopic: 'notes', publisher: devices[1]!.id, payload: 'hello from stdin' },
      ]);
      expect(JSON.parse(lines[0]!.payload as string)).toEqual([{ n: 'temp', u: 'Cel', v: 21.5 }]);
    } finally {
      sub.kill('SIGINT');
    }
    expect(await exited).toBe(0);
  }, 30_000);

  it('queries stored messages: filters, aggregation and --csv', async () => {
    await json('send', channel, '--name', 'temp', '--value', '23.5', '--unit', 'Cel', '--subtopic', 'lab', '--device-key', devices[0]!.key);
    let total = 0;
    for (let i = 0; i < 100 && total < 3; i++) {
      total = (await json('query', channel)).total;
      if (total < 3) await new Promise((r) => setTimeout(r, 100));
    }
    expect(total).toBe(3);
    expect((await json('query', channel, '--subtopic', 'notes')).items).toMatchObject([{ payload: 'hello from stdin' }]);
    // Cursor pages: --no-total leaves the count out, --cursor takes the page's next.
    const first = await json('query', channel, '--limit', '2', '--no-total');
    expect(first.total).toBeUndefined();
    expect(first.items).toHaveLength(2);
    const second = await json('query', channel, '--limit', '2', '--cursor', first.next);
    expect(second).toMatchObject({ total: 3, next: null });
    expect(second.items.map((m: { seq: number }) => m.seq)).toEqual([first.items[1].seq - 1]);
    // --all: every page by cursor, as JSON lines, or as one CSV table
    const lines = await cli(['query', channel, '--all', '--limit', '1', '--order', 'asc']);
    expect(lines.code).toBe(0);
    expect(lines.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { seq: number }).seq)).toEqual([1, 2, 3].map((i) => first.items[1].seq - 2 + i));
    const table = await cli(['query', channel, '--all', '--limit', '1', '--csv', '--format', 'senml']);
    const csvRows = table.stdout.trim().split('\r\n');
    expect(csvRows[0]).toMatch(/^seq,time,subtopic,publisher,name,/);
    expect(csvRows.filter((r) => r.startsWith('seq,'))).toHaveLength(1);
    expect(csvRows).toHaveLength(3); // the header and the two temperature records, a page each
    const avg = await json('query', channel, '--format', 'senml', '--name', 'temp', '--aggregation', 'avg');
    expect(avg.items[0]).toMatchObject({ value: 22.5, count: 2 });
    const csv = await cli(['query', channel, '--format', 'senml', '--order', 'asc', '--csv']);
    expect(csv.code).toBe(0);
    const rows = csv.stdout.trim().split('\r\n');
    expect(rows[0]).toContain('name');
    expect(rows).toHaveLength(3);
    expect(rows[1]).toContain('temp');
    expect(rows[1]).toContain('21.5');
  });

  it('reaches every query API parameter from `query` (--data-value for vd, as --string-value for vs)', async () => {
    const help = (await cli(['query', '--help'])).stdout;
    const flags: Record<string, string> = { v: '--value', vs: '--string-value', vb: '--bool-value', vd: '--data-value', total: '--no-total' };
    const missing = Object.keys(QuerySchema.shape).filter((p) => !help.includes(`${flags[p] ?? `--${p}`} `));
    expect(missing).toEqual([]);
    for (const vd of ['AQID', 'BAUG']) await json('send', channel, JSON.stringify([{ n: 'blob', vd }]), '-t', 'application/senml+json', '--subtopic', 'data');
    let found: { name: string; dataValue: string }[] = [];
    for (let i = 0; i < 100 && found.length === 0; i++) {
      found = (await json('query', channel, '--format', 'senml', '--data-value', 'BAUG')).items;
      if (found.length === 0) await new Promise((r) => setTimeout(r, 100));
    }
    expect(found).toMatchObject([{ name: 'blob', dataValue: 'BAUG' }]);
    const bad = await cli(['query', channel, '--format', 'senml', '--data-value', 'BAUG=']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: invalid query: vd: .+ \(400 validation_failed\)\n$/);
  });

  it('provisions nothing when the layout names a channel id that does not exist, and connects to one that does', async () => {
    const missing = await cli(['provision', '-'], { input: 'devices:\n  - name: ghost-1\n    channels: [nope]\n' });
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toMatch(/^error: layout: devices\.0\.channels: .*nope\n$/);
    expect((await json('devices', 'list', '--name', 'ghost')).total).toBe(0);
    const ok = await cli(['provision', '-', '--json'], { input: `devices:\n  - name: ghost-2\n    channels: [${channel}]\n` });
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout).devices).toMatchObject([{ name: 'ghost-2', channels: [channel] }]);
  });

  it('provisions a YAML layout: channels, numbered devices with keys printed once, connections', async () => {
    const file = join(home, 'layout.yaml');
    writeFileSync(file, ['channels:', '  - name: plant', '    metadata: { site: north }', 'devices:', '  - name: "pump-{n}"', '    count: 3', '    channels: [plant]', '    types: [publish]', ''].join('\n'));
    const r = await json<{ channels: { id: string; name: string }[]; devices: { id: string; name: string; key: string; channels: string[] }[] }>('provision', file);
    expect(r.channels.map((c) => c.name)).toEqual(['plant']);
    expect(r.devices.map((d) => d.name)).toEqual(['pump-1', 'pump-2', 'pump-3']);
    expect(r.devices.every((d) => d.key.length > 20 && d.channels[0] === r.channels[0]!.id)).toBe(true);
    const connected = await json('channels', 'devices', r.channels[0]!.id);
    expect(connected.items.map((d: { types: string[] }) => d.types)).toEqual([['publish'], ['publish'], ['publish']]);
    const bad = await cli(['provision', file.replace('layout', 'missing')]);
    expect(bad.code).not.toBe(0);
    writeFileSync(file, 'devices:\n  - name: x\n    colour: red\n');
    const invalid = await cli(['provision', file]);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toContain('colour');
  });

  it('issues, uses and revokes API keys', async () => {
    const key = await json('keys', 'issue', 'reader', '--scopes', 'devices:read', '--expires-in', '1h');
    expect(key.key).toBeTruthy();
    expect((await json('--token', key.key, 'devices', 'list')).total).toBeGreaterThan(0);
    expect((await json('keys', 'list')).items.map((k: { id: string }) => k.id)).toContain(key.id);
    expect((await json('keys', 'list', '--name', 'READ')).items.map((k: { id: string }) => k.id)).toEqual([key.id]);
    expect((await json('keys', 'list', '--name', 'nothing-like-it')).total).toBe(0);
    expect(await json('keys', 'revoke', key.id)).toEqual({ revoked: key.id });
    const after = await cli(['--token', key.key, 'devices', 'list', '--json']);
    expect(after.code).toBe(1);
    expect(after.stderr).toMatch(/^error: .+ \(401 \w+\)/);
  });

  it('manages policies and apps', async () => {
    const p = await json('policies', 'create', 'no-deletes', '--deny', 'devices:delete,channels:delete@*');
    expect(p.statements).toEqual([{ effect: 'deny', actions: ['devices:delete', 'channels:delete'], resources: ['*'] }]);
    await json('policies', 'attach', p.id, devices[0]!.id, '--type', 'device');
    expect((await json('policies', 'attachments', p.id)).items).toMatchObject([{ principal_type: 'device', principal_id: devices[0]!.id }]);
    const app = await json('apps', 'create', 'dash', '--scopes', 'devices:read,messages:subscribe');
    expect(app).toMatchObject({ name: 'dash', scopes: ['devices:read', 'messages:subscribe'], client_secret: expect.any(String) });
    expect((await json('apps', 'list')).items.map((a: { id: string }) => a.id)).toEqual([app.id]);
    expect((await json('apps', 'list', '--name', 'DAS')).items.map((a: { id: string }) => a.id)).toEqual([app.id]);
    expect((await json('apps', 'list', '--name', 'nothing-like-it')).total).toBe(0);
    // rotate-secret: a plain rotation leaves its token alone; --revoke-issued ends it.
    const tokenOf = async (secret: string) => {
      const r = await fetch(`${platform.url}/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ grant_type: 'client_credentials', client_id: app.client_id, client_secret: secret }) });
      return ((await r.json()) as { access_token: string }).access_token;
    };
    const devicesAs = async (token: string) => (await fetch(`${platform.url}/orgs/${org}/devices`, { headers: { authorization: `Bearer ${token}` } })).status;
    const token = await tokenOf(app.client_secret);
    const plain = await json('apps', 'rotate-secret', app.id);
    expect(plain).toMatchObject({ id: app.id, client_secret: expect.any(String) });
    expect(plain).not.toHaveProperty('revoked_keys');
    expect(await devicesAs(token)).toBe(200);
    const revoking = await json('apps', 'rotate-secret', app.id, '--revoke-issued');
    expect(revoking).toMatchObject({ id: app.id, client_secret: expect.any(String), revoked_keys: 0 });
    expect(await devicesAs(token)).toBe(401);
    expect(await devicesAs(await tokenOf(revoking.client_secret))).toBe(200);
    expect((await cli(['apps', 'rotate-secret', '--help'])).stdout).toContain('--revoke-issued');
  });

  it('runs that share the config share the session: a long run takes the pair another stored, and never writes over another session or an org chosen meanwhile', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, { XDG_CONFIG_HOME: home, EDGEFLUX_API: platform.url, EDGEFLUX_TOKEN: '', EDGEFLUX_DEVICE_KEY: '' });
    try {
      const file = join(home, 'edgeflux', 'config.json');
      const read = () => JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
      const before = read();
      const long = context(new Command()); // a long `edgeflux sub`: its session read once, at its start
      const other = context(new Command()); // another run refreshes meanwhile and stores the new pair
      await other.client.refresh();
      const refreshed = read();
      expect(refreshed.refresh_token).not.toBe(before.refresh_token);
      // Another run chose another org meanwhile.
      writeFileSync(file, JSON.stringify({ ...refreshed, org: 'chosen-meanwhile' }));
      // The long run's access token is refused: it takes the stored pair (its own refresh token is spent).
      long.client.useTokens({ access_token: 'refused', refresh_token: before.refresh_token! });
      expect((await long.client.users.me()).email).toBe(email);
      expect(long.client.refreshToken).toBe(refreshed.refresh_token);
      // Its own refresh later is stored onto the file as it is now: the org chosen meanwhile stays.
      await long.client.refresh();
      expect(read()).toMatchObject({ org: 'chosen-meanwhile', email, refresh_token: long.client.refreshToken });
      // Someone else logs in: a run of the old session no longer writes its tokens over theirs.
      const theirs = { ...read(), email: 'someone-else@example.com', token: 't', refresh_token: 'r' };
      writeFileSync(file, JSON.stringify(theirs));
      await long.client.refresh();
      expect(read()).toEqual(theirs);
      writeFileSync(file, JSON.stringify({ ...theirs, email, token: long.client.token, refresh_token: long.client.refreshToken, org }));
    } finally {
      process.env = saved;
    }
  });

  it('fails with a non-zero exit and the API problem message', async () => {
    const r = await cli(['devices', 'get', 'no-such-device', '--json']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^error: .*not found.* \(404 not_found\)\n$/i);
    const invalid = await cli(['channels', 'create', '   ']);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toContain('422');
    const usage = await cli(['keys', 'issue', 'no-scopes']);
    expect(usage.code).not.toBe(0);
    expect(usage.stderr).toContain('--scopes');
  });

  it('says "log in again" once when the API already says it, and keeps the 401 as the cause', () => {
    const ctx = { credential: 'session' as const, api: 'http://a', config: { api: 'http://a', email: 'me@example.com' } };
    const reused = EdgefluxError.local(401, 'unauthorized', 'refresh token reused: every token of this session was revoked; log in again');
    const hinted = withLoginHint(reused, ctx) as Error;
    expect(hinted.message).toBe('refresh token reused: every token of this session was revoked; log in again (401 unauthorized): the stored session was refused; run `edgeflux login -e me@example.com`');
    expect(hinted.cause).toBe(reused);
    expect((withLoginHint(reused, { ...ctx, credential: 'none' }) as Error).cause).toBe(reused);
  });

  // The README sets a channel's defaultContentType with curl; the CLI's `--set` read every value as
  // JSON, so `--set defaultContentType=application/senml+json` died on "Unexpected token 'a'" and
  // `--set foo` on a JSON error about "foo".
  it('changes channel settings with --set: numbers and rates as JSON, text as is, a usage error without =', async () => {
    const ch = (await json<{ id: string }>('channels', 'create', 'settings')).id;
    const set = await json('channels', 'limits', ch, '--set', 'defaultContentType=application/senml+json', '--set', 'maxPayloadBytes=4096', '--set', 'channelRate={"perSecond":50,"burst":100}');
    expect(set).toMatchObject({ defaultContentType: 'application/senml+json', maxPayloadBytes: 4096, channelRate: { perSecond: 50, burst: 100 } });
    expect(await json('channels', 'limits', ch)).toMatchObject({ defaultContentType: 'application/senml+json', maxPayloadBytes: 4096 });
    const bare = await cli(['channels', 'limits', ch, '--set', 'retentionDays']);
    expect(bare.code).toBe(1);
    expect(bare.stderr).toContain("argument 'retentionDays' is invalid. NAME=VALUE, e.g. maxPayloadBytes=4096");
    // A value of the wrong type is the API's to refuse, naming the setting.
    const wrong = await cli(['channels', 'limits', ch, '--set', 'maxPayloadBytes=lots']);
    expect(wrong.stderr).toMatch(/^error: invalid body: maxPayloadBytes: .*\(422 validation_failed\)\n$/);
  });

  // A fresh clone's first command: no session and no org stored. Asking for an org id the user
  // cannot have yet ("no org: pass --org ID…") sent them the wrong way; logging in picks their org.
  it('tells someone who never logged in to log in, not to pass an org they do not have yet', async () => {
    const fresh = mkdtempSync(join(tmpdir(), 'edgeflux-cli-fresh-'));
    try {
      for (const args of [['devices', 'list'], ['channels', 'create', 'telemetry'], ['connect', '-c', 'c', '-d', 'd']]) {
        const r = await cli(args, { env: { XDG_CONFIG_HOME: fresh } });
        expect(r.code, args.join(' ')).toBe(1);
        expect(r.stderr, args.join(' ')).toBe('error: not logged in: run `edgeflux login -e EMAIL` (or pass --token or --device-key)\n');
      }
      // With a credential but no org, the org is what is missing.
      const keyed = await cli(['--token', 'some-api-key', 'devices', 'list'], { env: { XDG_CONFIG_HOME: fresh } });
      expect(keyed.stderr).toBe('error: no org: pass --org ID, set EDGEFLUX_ORG, or run `edgeflux orgs use ID`\n');
    } finally {
      rmSync(fresh, { recursive: true, force: true });
    }
  });

  // Last: it logs out.
  it('after logout says to log in rather than "missing or invalid credentials"; a stored session refused keeps its 401, with the hint to log in again', async () => {
    const file = join(home, 'edgeflux', 'config.json');
    const session = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
    expect((await cli(['logout', '--json'])).code).toBe(0);
    const hint = `run \`edgeflux login -e ${email}\` (or pass --token or --device-key)`;
    for (const args of [['whoami'], ['devices', 'list', '--json']]) {
      const r = await cli(args);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`error: not logged in: ${hint}\n`);
    }
    // Another API than the one logged in to: no session there either.
    const elsewhere = platform.url.replace('127.0.0.1', 'localhost');
    const other = await cli(['--api', elsewhere, 'whoami']);
    expect(other.stderr).toBe(`error: not logged in to ${elsewhere}: run \`edgeflux login -e EMAIL\` (or pass --token or --device-key)\n`);
    // The session as it was, its access token refused and its refresh token revoked by the logout.
    writeFileSync(file, JSON.stringify({ ...session, token: 'refused' }));
    const refused = await cli(['whoami']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(`error: refresh token invalid or expired (401 unauthorized): the stored session was refused; log in again with \`edgeflux login -e ${email}\`\n`);
    // A wrong password is the answer to login itself, and a refused --token the caller's own: both as the API says.
    expect((await cli(['login', '-e', email, '--password', 'not the password'])).stderr).toBe('error: wrong email or password (401 unauthorized)\n');
    expect((await cli(['--token', 'nope', 'whoami'])).stderr).toMatch(/^error: [^:]+ \(401 unauthorized\)\n$/);
  });
});
