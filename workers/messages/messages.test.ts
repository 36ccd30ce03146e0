import { env } from 'cloudflare:workers';
import { constants, deflateRawSync, inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { bytesOf } from '../../shared/cbor';
import { decodeServerFrame, type ServerFrame } from '../../shared/frames';
import { LINK_SUBPROTOCOL, LINK_SUBPROTOCOL_V1, decodeLinkFrame, encodeLinkFrame } from '../../shared/link';
import { cborDecode } from '../../shared/cbor';
import { newOrg, newUser } from '../../test/workers/helpers';
import { buildApp } from '../app';
import { newSecret, sha256Hex } from '../lib/crypto';
import { messages } from './index';

// The lead mounts `messages` in workers/app.ts; until then the tests mount it on the real app.
const app = buildApp();
app.route('/', messages);

const call = (path: string, init: RequestInit = {}) => app.request(`http://edgeflux.test${path}`, init, env);

/** A channel with two devices: `rw` may publish and subscribe, `ro` may only subscribe. */
async function world() {
  const owner = await newUser();
  const org = await newOrg(owner.token);
  const channel = crypto.randomUUID();
  const rw = { id: crypto.randomUUID(), key: newSecret('efd') };
  const ro = { id: crypto.randomUUID(), key: newSecret('efd') };
  const t = Date.now();
  await env.DB.prepare("INSERT INTO channels (id, org_id, name, created_at, updated_at) VALUES (?, ?, 'ch', ?, ?)").bind(channel, org.id, t, t).run();
  for (const [d, pub] of [[rw, 1], [ro, 0]] as const) {
    await env.DB.batch([
      env.DB.prepare("INSERT INTO devices (id, org_id, name, key_hash, created_at, updated_at) VALUES (?, ?, 'd', ?, ?, ?)").bind(d.id, org.id, await sha256Hex(d.key), t, t),
      env.DB.prepare('INSERT INTO connections (org_id, channel_id, device_id, can_publish, can_subscribe, created_at) VALUES (?, ?, ?, ?, 1, ?)').bind(org.id, channel, d.id, pub, t),
    ]);
  }
  return { owner, org, channel, rw, ro };
}

const device = (key: string) => ({ authorization: `Device ${key}` });

async function open(path: string, headers: Record<string, string>) {
  const res = await call(path, { headers: { upgrade: 'websocket', ...headers } });
  const ws = res.webSocket;
  if (res.status !== 101 || !ws) throw new Error(`no upgrade: ${res.status} ${await res.text()}`);
  ws.binaryType = 'arraybuffer';
  const frames: ServerFrame[] = [];
  /** Per frame: did it come as a binary (CBOR) message? */
  const binary: boolean[] = [];
  const waiters: (() => void)[] = [];
  const closed = new Promise<{ code: number; reason: string }>((r) => ws.addEventListener('close', (e) => r({ code: e.code, reason: e.reason })));
  ws.addEventListener('message', (e) => {
    binary.push(typeof e.data !== 'string');
    frames.push(decodeServerFrame(typeof e.data === 'string' ? e.data : bytesOf(e.data as ArrayBuffer)));
    waiters.splice(0).forEach((w) => w());
  });
  ws.accept();
  const take = async (n: number): Promise<ServerFrame[]> => {
    const deadline = Date.now() + 2000;
    while (frames.length < n) {
      if (Date.now() > deadline) throw new Error(`got ${frames.length} of ${n} frames`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 50);
      });
    }
    return frames.splice(0, n);
  };
  return { res, ws, take, closed, binary };
}

describe('message API: HTTP publish', () => {
  it('publishes with a device key and answers 202 {seq, created}', async () => {
    const w = await world();
    const r1 = await call(`/channels/${w.channel}/messages/room/1`, { method: 'POST', headers: { ...device(w.rw.key), 'content-type': 'application/json' }, body: '{"t":21}' });
    expect(r1.status).toBe(202);
    const b1 = await r1.json<{ seq: number; created: number }>();
    expect(b1.seq).toBe(1);
    expect(b1.created).toBeGreaterThan(0);
    const r2 = await call(`/channels/${w.channel}/messages`, { method: 'POST', headers: device(w.rw.key), body: new Uint8Array([1, 2]) });
    expect(await r2.json()).toMatchObject({ seq: 2 });
  });

  it('answers problem+json with the right status for every refusal', async () => {
    const w = await world();
    const post = (path: string, headers: Record<string, string>, body: BodyInit = 'x') => call(path, { method: 'POST', headers, body });
    const problem = async (res: Response) => ({ ...(await res.json<{ code: string; detail: string }>()), status: res.status, contentType: res.headers.get('content-type') });
    expect(await problem(await post(`/channels/${w.channel}/messages`, {}))).toMatchObject({ status: 401, contentType: 'application/problem+json', code: 'unauthorized' });
    expect(await problem(await post(`/channels/${w.channel}/messages`, device(w.ro.key)))).toMatchObject({ status: 403 });
    expect(await problem(await post(`/channels/${crypto.randomUUID()}/messages`, device(w.rw.key)))).toMatchObject({ status: 404 });
    expect(await problem(await post(`/channels/${w.channel}/messages/a/%23`, device(w.rw.key)))).toMatchObject({ status: 400, code: 'invalid_subtopic' });
    expect(await problem(await post(`/channels/${w.channel}/messages`, device(w.rw.key), new Uint8Array(2 * 1024 * 1024)))).toMatchObject({ status: 413 });
    const senml = await problem(await post(`/channels/${w.channel}/messages`, { ...device(w.rw.key), 'content-type': 'application/senml+json' }, '[{"n":"a","v":1},{"n":"b","v":"x"}]'));
    expect(senml).toMatchObject({ status: 400, code: 'invalid_senml', detail: expect.stringMatching(/record 1.*'v'/) });
    expect(await problem(await post(`/channels/${w.channel}/messages`, { ...device(w.rw.key), 'content-type': 'application/json' }, '7'))).toMatchObject({ status: 400, code: 'invalid_json' });
  });

  it('removes a gzip or deflate Content-Encoding before storing; 415 with Accept-Encoding for another coding, 400 for a body that is not its coding', async () => {
    const w = await world();
    const sub = await open(`/channels/${w.channel}/messages`, device(w.rw.key));
    expect((await sub.take(1))[0]).toMatchObject({ type: 'subscribed' });
    const packed = async (text: string, format: 'gzip' | 'deflate') => new Uint8Array(await new Response(new Blob([text]).stream().pipeThrough(new CompressionStream(format))).arrayBuffer());
    const post = (headers: Record<string, string>, body: BodyInit) => call(`/channels/${w.channel}/messages`, { method: 'POST', headers: { ...device(w.rw.key), ...headers }, body });
    const json = { 'content-type': 'application/json' };
    expect((await post({ ...json, 'content-encoding': 'gzip' }, await packed('{"t":1}', 'gzip'))).status).toBe(202);
    expect((await post({ ...json, 'content-encoding': 'Deflate' }, await packed('{"t":2}', 'deflate'))).status).toBe(202);
    expect((await post({ 'content-type': 'text/plain', 'content-encoding': 'identity' }, 'as is')).status).toBe(202);
    expect((await sub.take(3)).map((f) => (f.type === 'message' ? new TextDecoder().decode(f.envelope.payload) : f.type))).toEqual(['{"t":1}', '{"t":2}', 'as is']);

    const br = await post({ ...json, 'content-encoding': 'br' }, 'x');
    expect([br.status, br.headers.get('accept-encoding'), br.headers.get('content-type')]).toEqual([415, 'gzip, deflate', 'application/problem+json']);
    expect(await br.json()).toMatchObject({ code: 'unsupported_content_encoding' });
    expect((await post({ 'content-encoding': 'gzip, gzip' }, 'x')).status).toBe(415);
    expect((await post({ 'content-encoding': 'constructor' }, 'x')).status).toBe(415);
    const corrupt = await post({ 'content-type': 'text/plain', 'content-encoding': 'gzip' }, 'not gzip at all');
    expect([corrupt.status, (await corrupt.json<{ code: string }>()).code]).toEqual([400, 'invalid_content_encoding']);
    // A small body that decodes past the ceiling (a "zip bomb") is refused without being stored.
    const bomb = await packed('0'.repeat(2 * 1024 * 1024), 'gzip');
    expect(bomb.length).toBeLessThan(64 * 1024);
    expect((await post({ 'content-encoding': 'gzip' }, bomb)).status).toBe(413);
    // None of the refused bodies reached the channel: the next message is seq 4.
    expect(await (await post({ 'content-type': 'text/plain' }, 'last')).json()).toMatchObject({ seq: 4 });
    sub.ws.close();
  });

  it('passes 429 with Retry-After through from the channel', async () => {
    const w = await world();
    const stub = env.CHANNELS.get(env.CHANNELS.idFromName(w.channel));
    await stub.configure(w.channel, { publisherRate: { perSecond: 0.01, burst: 1 } });
    expect((await call(`/channels/${w.channel}/messages`, { method: 'POST', headers: device(w.rw.key), body: 'a' })).status).toBe(202);
    const limited = await call(`/channels/${w.channel}/messages`, { method: 'POST', headers: device(w.rw.key), body: 'b' });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  });
});

/**
 * A zlib stream (Content-Encoding: deflate) of `mib` MiB of zeros, about 1 KiB per MiB: the deflate
 * blocks of one MiB, ended with a sync flush (byte-aligned, not final), repeated; then an empty final
 * block (RFC 1951 §3.2.6) and the Adler-32 of n zeros, which is n mod 65521 in the high half (RFC 1950).
 */
function zeros(mib: number): Uint8Array {
  const unit = deflateRawSync(new Uint8Array(1 << 20), { level: 9, finishFlush: constants.Z_SYNC_FLUSH });
  const out = new Uint8Array(2 + unit.byteLength * mib + 6);
  out.set([0x78, 0xda]);
  for (let i = 0; i < mib; i++) out.set(unit, 2 + i * unit.byteLength);
  const end = 2 + unit.byteLength * mib;
  out.set([0x03, 0x00], end);
  new DataView(out.buffer).setUint32(end + 2, ((((mib * 2 ** 20) % 65521) << 16) | 1) >>> 0);
  return out;
}

/** A request body sent in the given chunks, without Content-Length (Transfer-Encoding: chunked). */
const chunked = (chunks: Uint8Array[]) =>
  new ReadableStream<Uint8Array>({
    pull(c) {
      const next = chunks.shift();
      if (next) c.enqueue(next);
      else c.close();
    },
  });

describe('message API: HTTP publish, content codings', () => {
  const text = (f: ServerFrame) => (f.type === 'message' ? new TextDecoder().decode(f.envelope.payload) : f.type);

  it('refuses 1 MB deflate bodies that decode to 1000 MiB each with 413, in milliseconds: nothing is inflated past the 1 MiB ceiling', async () => {
    const w = await world();
    const bomb = zeros(1000);
    const small = inflateSync(zeros(3)); // the same construction, small, is valid zlib
    expect([small.byteLength, small.every((b) => b === 0)]).toEqual([3 << 20, true]);
    expect(bomb.byteLength).toBeLessThanOrEqual(1024 * 1024);
    const started = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const res = await call(`/channels/${w.channel}/messages`, { method: 'POST', headers: { ...device(w.rw.key), 'content-encoding': 'deflate' }, body: bomb });
        return [res.status, (await res.json<{ code: string }>()).code];
      }),
    );
    expect(answers).toEqual(Array(4).fill([413, 'payload_too_large']));
    // Decoding that stops at 1 MiB took ~40 ms for all four here. A DecompressionStream inflates each
    // chunk it is given in full before its output is counted: 1000 MiB a body, ~7 s and gigabytes for
    // the four (workerd's RSS cannot be read from a test, so the time stands in for it).
    expect(Date.now() - started).toBeLessThan(500);
  });

  it('counts the coded body against the ceiling: 2 MiB of empty deflate blocks sent chunked is 413, though it decodes to nothing', async () => {
    const w = await world();
    // 0x00 00 00 ff ff: a stored block of no bytes, not final (RFC 1951 §3.2.4). Before, only the
    // output was counted, and such a stream was read for as long as it was sent.
    const empties = new Uint8Array(64 * 1024);
    for (let i = 0; i + 5 <= empties.byteLength; i += 5) empties.set([0x00, 0x00, 0x00, 0xff, 0xff], i);
    const body = [new Uint8Array([0x78, 0x9c]), ...Array.from({ length: 32 }, () => empties.slice(0, 65535)), new Uint8Array([0x03, 0x00, 0x00, 0x00, 0x00, 0x01])];
    const res = await call(`/channels/${w.channel}/messages`, { method: 'POST', headers: { ...device(w.rw.key), 'content-encoding': 'deflate' }, body: chunked(body) });
    expect(res.status).toBe(413);
  });

  it('decodes a gzip body of several members (RFC 1952 §2.2) to their concatenation', async () => {
    const w = await world();
    const sub = await open(`/channels/${w.channel}/messages`, device(w.rw.key));
    expect(await sub.take(1)).toMatchObject([{ type: 'subscribed' }]);
    const gzip = async (s: string) => new Uint8Array(await new Response(new Blob([s]).stream().pipeThrough(new CompressionStream('gzip'))).arrayBuffer());
    const members = [await gzip('{"t":'), await gzip('1'), await gzip('}')];
    const body = new Uint8Array(members.reduce((n, m) => n + m.byteLength, 0));
    members.reduce((at, m) => (body.set(m, at), at + m.byteLength), 0);
    const res = await call(`/channels/${w.channel}/messages`, { method: 'POST', headers: { ...device(w.rw.key), 'content-type': 'application/json', 'content-encoding': 'gzip' }, body });
    expect(res.status).toBe(202);
    expect((await sub.take(1)).map(text)).toEqual(['{"t":1}']);
    sub.ws.close();
  });

  it('takes an empty body with a Content-Encoding as an empty payload: a retained message is cleared, with or without a body stream', async () => {
    const w = await world();
    const post = (body: BodyInit | null, retain = true) =>
      call(`/channels/${w.channel}/messages/state${retain ? '?retain=true' : ''}`, { method: 'POST', headers: { ...device(w.rw.key), 'content-type': 'text/plain', 'content-encoding': 'gzip' }, body });
    const gzip = new Uint8Array(await new Response(new Blob(['on']).stream().pipeThrough(new CompressionStream('gzip'))).arrayBuffer());
    for (const empty of [null, chunked([])]) {
      expect((await post(gzip)).status).toBe(202);
      expect((await post(empty)).status).toBe(202);
      // A new subscriber gets no retained message: the first it sees is the next live one.
      const sub = await open(`/channels/${w.channel}/messages/state`, device(w.rw.key));
      expect((await sub.take(1))[0]).toMatchObject({ type: 'subscribed' });
      expect((await post(gzip, false)).status).toBe(202);
      expect((await sub.take(1)).map(text)).toEqual(['on']);
      sub.ws.close();
    }
  });

  it('does not call a body that fails while it is read (the client went away) badly encoded', async () => {
    const w = await world();
    const failing = () => new ReadableStream<Uint8Array>({ pull: (c) => c.error(new Error('connection reset')) });
    const post = (headers: Record<string, string>) => call(`/channels/${w.channel}/messages`, { method: 'POST', headers: { ...device(w.rw.key), ...headers }, body: failing() });
    const coded = await post({ 'content-encoding': 'gzip' });
    const plain = await post({});
    expect(coded.status).not.toBe(400);
    expect([coded.status, (await coded.json<{ code: string }>()).code]).toEqual([plain.status, (await plain.json<{ code: string }>()).code]);
  });

  it('refuses a Content-Length over 1 MiB with 413 before reading the body', async () => {
    const w = await world();
    let pulled = false;
    const body = new ReadableStream<Uint8Array>({ pull: (c) => ((pulled = true), c.close()) }, { highWaterMark: 0 });
    const res = await call(`/channels/${w.channel}/messages`, { method: 'POST', headers: { ...device(w.rw.key), 'content-length': String(2 * 1024 * 1024) }, body });
    expect([res.status, pulled]).toEqual([413, false]);
  });

  it('stores a chunked body as sent, whatever its chunks', async () => {
    const w = await world();
    const sub = await open(`/channels/${w.channel}/messages`, device(w.rw.key));
    expect(await sub.take(1)).toMatchObject([{ type: 'subscribed' }]);
    const sent = Uint8Array.from({ length: 100_000 }, (_, i) => (i * 7) % 251);
    const sizes = [1, 16383, 16385, 40000, 27231];
    const chunks = sizes.map((n, i) => sent.slice(sizes.slice(0, i).reduce((a, b) => a + b, 0)).subarray(0, n));
    expect((await call(`/channels/${w.channel}/messages`, { method: 'POST', headers: device(w.rw.key), body: chunked(chunks) })).status).toBe(202);
    const [f] = await sub.take(1);
    expect(f?.type === 'message' && f.envelope.payload).toEqual(sent);
    sub.ws.close();
  });
});

describe('message API: WebSocket', () => {
  it('subscribes with a device key and receives HTTP-published messages as JSON', async () => {
    const w = await world();
    const s = await open(`/channels/${w.channel}/messages/room/%2B`, device(w.ro.key));
    await call(`/channels/${w.channel}/messages/room/1`, { method: 'POST', headers: { ...device(w.rw.key), 'content-type': 'text/plain' }, body: 'hi' });
    await call(`/channels/${w.channel}/messages/hall`, { method: 'POST', headers: device(w.rw.key), body: 'no' });
    const [subscribed, f] = await s.take(2);
    expect(subscribed).toEqual({ type: 'subscribed', seq: 0 });
    expect(f).toMatchObject({ type: 'message', envelope: { channel: w.channel, subtopic: 'room/1', publisher: w.rw.id, protocol: 'http', seq: 1 } });
  });

  it('negotiates CBOR and credentials via Sec-WebSocket-Protocol (browsers), and resumes with since', async () => {
    const w = await world();
    await call(`/channels/${w.channel}/messages`, { method: 'POST', headers: device(w.rw.key), body: 'one' });
    const s = await open(`/channels/${w.channel}/messages?since=0`, { 'sec-websocket-protocol': `edgeflux.cbor, device.${w.ro.key}` });
    expect(s.res.headers.get('sec-websocket-protocol')).toBe('edgeflux.cbor');
    expect(await s.take(2)).toMatchObject([{ type: 'subscribed', seq: 1, since: 0 }, { type: 'message', envelope: { seq: 1 } }]);
    expect(s.binary.splice(0)).toEqual([true, true]);
    const q = await open(`/channels/${w.channel}/messages?format=cbor`, { 'sec-websocket-protocol': `device.${w.ro.key}` });
    expect(q.res.headers.get('sec-websocket-protocol')).toBe(`device.${w.ro.key}`);
    expect(await q.take(1)).toEqual([{ type: 'subscribed', seq: 1 }]);
    expect(q.binary).toEqual([true]);
  });

  it('lets only devices allowed to publish send publish frames', async () => {
    const w = await world();
    const rw = await open(`/channels/${w.channel}/messages/x`, device(w.rw.key));
    const ro = await open(`/channels/${w.channel}/messages/x`, device(w.ro.key));
    for (const s of [rw, ro]) expect(await s.take(1)).toEqual([{ type: 'subscribed', seq: 0 }]);
    ro.ws.send(JSON.stringify({ id: 1, payload: 'no' }));
    expect(await ro.take(1)).toEqual([{ type: 'error', id: 1, status: 403, code: 'forbidden', message: expect.any(String) }]);
    rw.ws.send(JSON.stringify({ id: 2, payload: 'yes' }));
    const frames = await rw.take(2);
    expect(frames[1]).toMatchObject({ type: 'ack', id: 2, seq: 1 });
    expect(await ro.take(1)).toMatchObject([{ type: 'message', envelope: { publisher: w.rw.id, protocol: 'ws' } }]);
  });

  it('refuses an upgrade in a way a browser can read: one error frame, then close 4000+status', async () => {
    const w = await world();
    const anon = await open(`/channels/${w.channel}/messages`, {});
    expect(await anon.take(1)).toEqual([{ type: 'error', status: 401, code: 'unauthorized', message: expect.any(String) }]);
    expect((await anon.closed).code).toBe(4401);
    const stranger = await open(`/channels/${crypto.randomUUID()}/messages`, device(w.ro.key));
    expect((await stranger.closed).code).toBe(4404);
    const bad = await open(`/channels/${w.channel}/messages?since=-1`, { 'sec-websocket-protocol': `edgeflux.json, device.${w.ro.key}` });
    expect(bad.res.headers.get('sec-websocket-protocol')).toBe('edgeflux.json');
    expect(await bad.take(1)).toMatchObject([{ type: 'error', status: 400, code: 'invalid_since' }]);
  });
});

describe('message API: bridge link', () => {
  const bridge = { authorization: `Bearer ${env.BRIDGE_SECRET}` };

  it('admits only the bridge secret, only as a WebSocket, only for existing channels', async () => {
    const w = await world();
    expect((await call(`/internal/channels/${w.channel}/link`, { headers: { upgrade: 'websocket', authorization: 'Bearer nope' } })).status).toBe(401);
    expect((await call(`/internal/channels/${w.channel}/link`, { headers: bridge })).status).toBe(426);
    expect((await call(`/internal/channels/${crypto.randomUUID()}/link`, { headers: { ...bridge, upgrade: 'websocket' } })).status).toBe(404);
  });

  it('opens a link that publishes and subscribes', async () => {
    const w = await world();
    const res = await call(`/internal/channels/${w.channel}/link`, { headers: { ...bridge, upgrade: 'websocket', 'sec-websocket-protocol': LINK_SUBPROTOCOL } });
    expect(res.status).toBe(101);
    expect(res.headers.get('sec-websocket-protocol')).toBe(LINK_SUBPROTOCOL);
    const ws = res.webSocket!;
    ws.binaryType = 'arraybuffer';
    const got = new Promise<unknown[]>((resolve) => {
      const ops: unknown[] = [];
      ws.addEventListener('message', (e) => {
        ops.push(...decodeLinkFrame(bytesOf(e.data as ArrayBuffer)));
        if (ops.length >= 3) resolve(ops);
      });
    });
    ws.accept();
    ws.send(encodeLinkFrame([
      { op: 'subscribe', sub: 1, filter: '#' },
      { op: 'publish', id: 5, subtopic: 't', publisher: w.rw.id, protocol: 'mqtt', contentType: 'text/plain', payload: new Uint8Array([104, 105]), retain: false },
    ]));
    const ops = await got;
    expect(ops).toEqual([
      { op: 'suback', sub: 1, seq: 0 },
      expect.objectContaining({ op: 'message', subs: [1], envelope: expect.objectContaining({ seq: 1, protocol: 'mqtt' }) }),
      { op: 'ack', id: 5, seq: 1, created: expect.any(Number) },
    ]);
  });
});

describe('bridge link: subprotocol versions', () => {
  const bridge = { authorization: `Bearer ${env.BRIDGE_SECRET}` };
  // Two publishes from one device, sent with string references, and the raw arrays of what comes back.
  async function roundTrip(offer: string): Promise<{ chosen: string | null; raw: unknown[][] }> {
    const w = await world();
    const res = await call(`/internal/channels/${w.channel}/link`, { headers: { ...bridge, upgrade: 'websocket', 'sec-websocket-protocol': offer } });
    expect(res.status).toBe(101);
    const ws = res.webSocket!;
    ws.binaryType = 'arraybuffer';
    const got = new Promise<unknown[][]>((resolve) => {
      const raw: unknown[][] = [];
      ws.addEventListener('message', (e) => {
        raw.push(...(cborDecode(bytesOf(e.data as ArrayBuffer)) as unknown[][]));
        if (raw.filter((op) => op[0] === 2).length >= 2) resolve(raw);
      });
    });
    ws.accept();
    const publish = (id: number) => ({ op: 'publish' as const, id, subtopic: 't', publisher: w.rw.id, protocol: 'mqtt' as const, contentType: 'text/plain', payload: new Uint8Array([104, 105]), retain: false });
    // Receivers take references on any version; this frame's second publish refers to the first's strings.
    ws.send(encodeLinkFrame([{ op: 'subscribe', sub: 1, filter: '#' }, publish(1), publish(2)], true));
    const raw = await got;
    ws.close();
    return { chosen: res.headers.get('sec-websocket-protocol'), raw };
  }

  it('chooses v2 when offered and then refers to strings a frame repeats', async () => {
    const { chosen, raw } = await roundTrip(`${LINK_SUBPROTOCOL}, ${LINK_SUBPROTOCOL_V1}`);
    expect(chosen).toBe(LINK_SUBPROTOCOL);
    const messages = raw.filter((op) => op[0] === 8);
    expect(messages).toHaveLength(2);
    // [8, subs, channel, seq, created, subtopic, publisher, protocol, contentType, …]: the second message's strings are indexes.
    expect(messages[0]!.slice(5, 9).every((x) => typeof x === 'string')).toBe(true);
    expect(messages[1]!.slice(5, 9).every((x) => typeof x === 'number')).toBe(true);
  });

  it('answers a v1-only bridge in v1: no references in what it sends', async () => {
    const { chosen, raw } = await roundTrip(LINK_SUBPROTOCOL_V1);
    expect(chosen).toBe(LINK_SUBPROTOCOL_V1);
    const messages = raw.filter((op) => op[0] === 8);
    expect(messages).toHaveLength(2);
    for (const m of messages) expect([m[2], ...m.slice(5, 9)].every((x) => typeof x === 'string')).toBe(true);
  });
});

describe('message API: OpenAPI', () => {
  it('documents the message routes', async () => {
    const doc = await (await call('/openapi.json')).json<{ paths: Record<string, unknown> }>();
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/channels/{id}/messages', '/channels/{id}/messages/{subtopic}', '/internal/channels/{id}/link']));
  });
});

describe('message API: D1 round trips', () => {
  /** env with a DB that counts round trips to D1 (each `first`/`all`/`run`/`raw` and each `batch`). */
  function counting() {
    let trips = 0;
    const wrap = (s: D1PreparedStatement): D1PreparedStatement =>
      new Proxy(s, {
        get(t, k) {
          const v = Reflect.get(t, k, t) as unknown;
          if (k === 'bind') return (...a: unknown[]) => wrap((v as (...a: unknown[]) => D1PreparedStatement).apply(t, a));
          if (k === 'first' || k === 'all' || k === 'run' || k === 'raw') return (...a: unknown[]) => (trips++, (v as (...a: unknown[]) => unknown).apply(t, a));
          return typeof v === 'function' ? v.bind(t) : v;
        },
      });
    const db = new Proxy(env.DB, {
      get(t, k) {
        if (k === 'prepare') return (sql: string) => wrap(t.prepare(sql));
        if (k === 'batch') return (stmts: D1PreparedStatement[]) => (trips++, t.batch(stmts));
        const v = Reflect.get(t, k, t) as unknown;
        return typeof v === 'function' ? v.bind(t) : v;
      },
    });
    return { env: { ...env, DB: db }, trips: () => trips };
  }

  it('decides a publish or a subscribe (with its may-publish) in one D1 round trip on a cold cache', async () => {
    const w = await world();
    const bearer = { authorization: `Bearer ${w.owner.token}` };
    const pub = counting();
    const r = await app.request(`http://edgeflux.test/channels/${w.channel}/messages`, { method: 'POST', headers: bearer, body: 'x' }, pub.env);
    expect(r.status).toBe(202);
    expect(pub.trips()).toBe(1);
    const sub = counting();
    const res = await app.request(`http://edgeflux.test/channels/${w.channel}/messages`, { headers: { upgrade: 'websocket', ...bearer } }, sub.env);
    expect(res.status).toBe(101);
    res.webSocket!.accept();
    res.webSocket!.close();
    expect(sub.trips()).toBe(1);
  });
});
