import type { Packet } from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { settle } from '../../testing/fake-clock';
import { PlatformError } from '../../platform/types';
import type { Principal } from '../../../shared/principal';
import { setup, text, VERSIONS } from './harness';

const T = 'channels/ch-1/messages';
const dev2 = { username: 'dev-2', password: Buffer.from('key-2') };
const publishedTexts = (ps: Packet[]): string[] => ps.flatMap((p) => (p.cmd === 'publish' ? [text(p)] : []));

describe.each(VERSIONS)('SUBSCRIBE and deliveries, protocol level %i', (v) => {
  it('answers each filter on its own: granted QoS or a failure code, in order', async () => {
    const t = setup({ maxQos: 1 });
    const c = await t.connected(v);
    const ack = await c.subscribe({ topic: `${T}/#`, qos: 2 }, { topic: 'channels/ch-3/messages', qos: 1 }, { topic: 'sensors/#', qos: 0 }, { topic: `${T}/a#`, qos: 0 }, { topic: 'channels/nope/messages', qos: 0 }, { topic: `${T}/x`, qos: 0 });
    expect(ack.granted).toEqual(v === 5 ? [1, 0x87, 0x8f, 0x8f, 0x87, 0] : [1, 0x80, 0x80, 0x80, 0x80, 0]);
  });

  it('sends retained messages after the SUBACK with RETAIN set; live ones without', async () => {
    const t = setup();
    await t.platform.inject('ch-1', 'state', 'on', { retain: true });
    const c = await t.connected(v);
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${T}/#`, qos: 1 }] });
    const [suback, retained] = await c.drain();
    expect(suback?.cmd).toBe('suback');
    expect(retained).toMatchObject({ cmd: 'publish', topic: `${T}/state`, retain: true, qos: 1 });
    await t.platform.inject('ch-1', 'state', 'off', { retain: true });
    const live = await c.next('publish');
    expect([text(live), live.retain]).toEqual(['off', false]);
  });

  it('`channels/+/messages/…` and `#` span every channel the device may read, as of the SUBSCRIBE', async () => {
    const t = setup();
    const c = await t.connected(v, dev2);
    await c.subscribe('channels/+/messages/span/#');
    await t.platform.inject('ch-1', 'span/a', 'one');
    await t.platform.inject('ch-2', 'span/b', 'two');
    await t.platform.inject('ch-ro', 'span/c', 'not mine');
    await t.platform.inject('ch-1', 'other', 'not matching');
    expect((await c.drain()).map((p) => (p.cmd === 'publish' ? p.topic : p.cmd))).toEqual(['channels/ch-1/messages/span/a', 'channels/ch-2/messages/span/b']);
    // A channel connected later is not covered until the client subscribes again.
    t.platform.channels.get('ch-ro')!.subscribers.add('dev-2');
    await t.platform.inject('ch-ro', 'span/c', 'later');
    expect(await c.drain()).toEqual([]);
    await c.subscribe('#');
    await t.platform.inject('ch-ro', 'x', 'now');
    expect(text(await c.next('publish'))).toBe('now');
  });

  it('stops delivering from a channel once the permission to subscribe there is withdrawn (re-checked after authorizationTtlMs)', async () => {
    const t = setup({ authorizationTtlMs: 5000 });
    const c = await t.connected(v, { ...dev2, clientId: 'revoked', clean: false, ...(v === 5 ? { properties: { sessionExpiryInterval: 600 } } : {}) });
    await c.subscribe('channels/+/messages/r/#', `${T}/only/#`, `$share/g/${T}/r/#`);
    const topics = async () => (await c.drain()).flatMap((p) => (p.cmd === 'publish' ? [p.topic] : []));
    await t.platform.inject('ch-1', 'r/1', 'before');
    await t.platform.inject('ch-2', 'r/1', 'before');
    // ch-1's message matches the wildcard filter and the shared one: the group's copy is its own [MQTT 5 §4.8.2].
    expect((await topics()).sort()).toEqual(['channels/ch-1/messages/r/1', 'channels/ch-1/messages/r/1', 'channels/ch-2/messages/r/1']);
    // dev-2's connection to ch-1 is removed: within the bound its deliveries still flow…
    t.platform.channels.get('ch-1')!.subscribers.delete('dev-2');
    await t.platform.inject('ch-1', 'r/2', 'within');
    expect(await topics()).toEqual(['channels/ch-1/messages/r/2', 'channels/ch-1/messages/r/2']);
    // …after it, the next delivery asks again, and ch-1 is dropped from every subscription.
    await t.clock.advance(5000);
    await t.platform.inject('ch-1', 'r/3', 'asked');
    await settle();
    await c.drain();
    await t.platform.inject('ch-1', 'r/4', 'after');
    await t.platform.inject('ch-1', 'only/x', 'after');
    await t.platform.inject('ch-2', 'r/4', 'still');
    expect(await topics()).toEqual(['channels/ch-2/messages/r/4']);
    expect(t.logs.filter((l) => l.includes('no longer allowed to subscribe on channel ch-1'))).toHaveLength(3);
    expect(t.platform.channels.get('ch-1')!.subs.size).toBe(0);
    // The session no longer holds the subscription that covered only ch-1.
    c.send({ cmd: 'disconnect' });
    await c.closedYet();
    const again = t.client(v);
    expect((await again.connect({ ...dev2, clientId: 'revoked', clean: false, ...(v === 5 ? { properties: { sessionExpiryInterval: 600 } } : {}) })).sessionPresent).toBe(true);
    await t.platform.inject('ch-2', 'r/5', 'resumed');
    await t.platform.inject('ch-1', 'only/y', 'gone');
    // (what ch-2 sent since the session's last checkpoint is replayed too: at least once)
    const resumed = (await again.drain()).flatMap((p) => (p.cmd === 'publish' ? [p.topic] : []));
    expect(resumed).toContain('channels/ch-2/messages/r/5');
    expect(resumed.filter((topic) => topic.startsWith('channels/ch-1/'))).toEqual([]);
  });

  it.each(['authorizationTtlMs', 'the platform\'s accessVersion moving'])('ends the connection, without its will, once its credential is refused (a device key rotated): on a delivery, a publish or a PINGREQ after %s', async (after) => {
    for (const via of ['delivery', 'publish', 'pingreq'] as const) {
      const t = setup({ authorizationTtlMs: 5000 });
      const watcher = await t.connected(v, { username: 'dev-1', password: Buffer.from('key-1'), clientId: 'watcher' });
      await watcher.subscribe(`${T}/will`);
      const c = await t.connected(v, { ...dev2, clientId: `rotated-${via}`, will: { topic: `${T}/will`, payload: Buffer.from('gone'), qos: 0, retain: false } });
      await c.subscribe(`${T}/x`);
      await t.platform.inject('ch-1', 'x', 'before');
      expect((await c.drain()).filter((p) => p.cmd === 'publish')).toHaveLength(1);
      t.platform.rotateKey('key-2');
      if (after === 'authorizationTtlMs') await t.clock.advance(5000);
      else t.platform.access.version++; // at once, not after the bound
      if (via === 'delivery') await t.platform.inject('ch-1', 'x', 'asked');
      else if (via === 'publish') c.send({ cmd: 'publish', topic: `${T}/y`, payload: Buffer.from('p'), qos: 0, dup: false, retain: false });
      else c.send({ cmd: 'pingreq' }); // a quiet channel: the keep alive asks
      await settle();
      if (v === 5) {
        const d = await c.next('disconnect');
        expect([d.reasonCode, d.properties?.reasonString]).toEqual([0x87, 'credential no longer valid: the device key was rotated']);
      }
      expect(await c.closedYet()).toBe(true);
      expect(t.logs.some((l) => l.includes('credential no longer valid'))).toBe(true);
      await settle();
      expect((await watcher.drain()).filter((p) => p.cmd === 'publish')).toEqual([]);
      // The publish that found out was not stored.
      expect(t.platform.published.map((p) => p.subtopic)).not.toContain('y');
    }
  });

  it.each(['key', 'app'] as const)('a connection on a credential that expires (%s: an API key issued with an expiry, an app token) ends at its expiry with 0x87 and no will, idle ones too; nothing is delivered or stored after it', async (kind) => {
    const t = setup({ authorizationTtlMs: 5000 });
    const exp = Math.floor(t.clock.now() / 1000) + 60;
    const principal: Principal =
      kind === 'key' ? { kind, id: 'key-a', orgId: 'org-1', owner: { kind: 'user', id: 'user-a' }, scopes: ['messages:*'], exp } : { kind, id: 'app-a', orgId: 'org-1', scopes: ['messages:*'], exp };
    t.platform.keys.set('token-a', principal);
    t.platform.addChannel('ch-k', { publish: [principal.id, 'dev-1'], subscribe: [principal.id, 'dev-1'] });
    const K = 'channels/ch-k/messages';
    const watcher = await t.connected(v, { username: 'dev-1', password: Buffer.from('key-1'), clientId: 'watcher' });
    await watcher.subscribe(`${K}/will`);
    const as = { username: principal.id, password: Buffer.from('token-a') };
    // Keep alive 0 and nothing sent: no PINGREQ, no delivery, no access change will ask about it.
    const idle = await t.connected(v, { ...as, clientId: 'idle', will: { topic: `${K}/will`, payload: Buffer.from('gone'), qos: 0, retain: false } });
    await idle.subscribe(`${K}/x`);
    const pub = await t.connected(v, { ...as, clientId: 'pub' });
    await t.platform.inject('ch-k', 'x', 'before');
    expect(publishedTexts(await idle.drain())).toEqual(['before']);
    await t.clock.advance(59_000);
    expect([await idle.closedYet(1), await pub.closedYet(1)]).toEqual([false, false]);
    await t.clock.advance(2000);
    for (const c of [idle, pub]) {
      if (v === 5) {
        const d = await c.next('disconnect');
        expect([d.reasonCode, d.properties?.reasonString]).toEqual([0x87, `credential no longer valid: ${kind === 'key' ? 'the API key expired' : 'the access token expired'}`]);
      }
      expect(await c.closedYet()).toBe(true);
    }
    pub.send({ cmd: 'publish', topic: `${K}/y`, payload: Buffer.from('late'), qos: 0, dup: false, retain: false });
    await t.platform.inject('ch-k', 'x', 'after');
    expect(publishedTexts(await idle.drain())).toEqual([]);
    expect(t.platform.published.map((p) => p.subtopic)).not.toContain('y');
    expect(publishedTexts(await watcher.drain())).toEqual([]);
  });

  it('between its expiry and the sweep that ends it, an expiring connection gets no delivery (shared or not) and stores no publish', async () => {
    const t = setup({ authorizationTtlMs: 5000 });
    const exp = Math.floor(t.clock.now() / 1000) + 60;
    const principal: Principal = { kind: 'key', id: 'key-a', orgId: 'org-1', owner: { kind: 'user', id: 'user-a' }, scopes: ['messages:*'], exp };
    t.platform.keys.set('token-a', principal);
    t.platform.addChannel('ch-k', { publish: [principal.id, 'dev-1'], subscribe: [principal.id, 'dev-1'] });
    const K = 'channels/ch-k/messages';
    const as = { username: principal.id, password: Buffer.from('token-a') };
    const sub = await t.connected(v, { ...as, clientId: 'sub' });
    await sub.subscribe(`${K}/x`);
    await sub.subscribe(`$share/g/${K}/s`);
    const pub = await t.connected(v, { ...as, clientId: 'pub' });
    // A connection whose keep alive runs out 500 ms before the expiry: its sweep then means the
    // next one cannot come before expiry + 500 ms (sweeps are a second apart at least).
    await t.clock.advance(exp * 1000 - t.clock.now() - 2000);
    await t.connected(v, { username: 'dev-1', password: Buffer.from('key-1'), clientId: 'lapses', keepalive: 1 });
    await t.clock.advance(1600);
    expect([await sub.closedYet(1), await pub.closedYet(1)]).toEqual([false, false]);
    await t.clock.advance(500); // expiry + 100 ms: no sweep yet
    await t.platform.inject('ch-k', 'x', 'after');
    await t.platform.inject('ch-k', 's', 'shared after');
    pub.send({ cmd: 'publish', topic: `${K}/y`, payload: Buffer.from('late'), qos: 0, dup: false, retain: false });
    await settle();
    expect(publishedTexts(await sub.drain())).toEqual([]);
    expect(t.platform.published.map((p) => p.subtopic)).not.toContain('y');
    // Each found out on the spot, without waiting for the sweep.
    expect([await sub.closedYet(), await pub.closedYet()]).toEqual([true, true]);
  });

  it('asks about its sessions at once when the platform says their org\'s access changed: idle ones on a rotated key end without sending a packet; other orgs\' are not asked about', async () => {
    const t = setup({ authorizationTtlMs: 5000 });
    const quietSub = await t.connected(v, { ...dev2, clientId: 'quiet-sub' });
    await quietSub.subscribe(`${T}/x`);
    const quietPub = await t.connected(v, { ...dev2, clientId: 'quiet-pub' });
    const other = await t.connected(v, { username: 'dev-1', password: Buffer.from('key-1'), clientId: 'still-good' });
    for (const c of [quietPub, other]) c.send({ cmd: 'publish', topic: `${T}/y`, payload: Buffer.from('p'), qos: 0, dup: false, retain: false });
    await settle();
    expect(t.platform.published).toHaveLength(2);
    t.platform.rotateKey('key-2');
    const asked = t.platform.authorizeCalls;
    t.platform.access.change('org-2'); // another org: nobody here is asked about
    await settle();
    expect(t.platform.authorizeCalls).toBe(asked);
    t.platform.access.change('org-1');
    await settle();
    for (const c of [quietSub, quietPub]) {
      if (v === 5) expect((await c.next('disconnect')).reasonCode).toBe(0x87);
      expect(await c.closedYet()).toBe(true);
    }
    // The connection on a good key was asked about too, and goes on.
    expect(t.platform.authorizeCalls).toBeGreaterThan(asked + 2);
    expect(await other.closedYet()).toBe(false);
    other.send({ cmd: 'publish', topic: `${T}/y`, payload: Buffer.from('q'), qos: 0, dup: false, retain: false });
    await settle();
    expect(t.platform.published).toHaveLength(3);
  });

  it('a session with nothing to ask about (no subscription, no publish) has its credential checked when its org\'s access changes: on a rotated key it ends', async () => {
    const t = setup({ authorizationTtlMs: 5000 });
    const idle = await t.connected(v, { ...dev2, clientId: 'idle' });
    const good = await t.connected(v, { username: 'dev-1', password: Buffer.from('key-1'), clientId: 'idle-good' });
    await settle();
    t.platform.rotateKey('key-2');
    t.platform.access.change('org-1');
    await settle();
    expect(t.platform.credentialRefusals).toBe(2);
    if (v === 5) expect((await idle.next('disconnect')).reasonCode).toBe(0x87);
    expect(await idle.closedYet()).toBe(true);
    expect(await good.closedYet()).toBe(false);
  });

  it('asks a connection\'s questions about an access change in one call: its subscribed channels and the publishes it was allowed, not the ones it was refused', async () => {
    const t = setup({ authorizationTtlMs: 5000 });
    const c = await t.connected(v, { username: 'dev-1', password: Buffer.from('key-1'), clientId: 'batched' });
    await c.subscribe(`${T}/x`, 'channels/ch-2/messages/x');
    // (A refused publish ends a 3.1.1 connection: only v5 keeps a refusal to leave out.)
    for (const topic of [`${T}/y`, ...(v === 5 ? ['channels/ch-ro/messages/y'] : [])]) c.send({ cmd: 'publish', topic, payload: Buffer.from('p'), qos: 0, dup: false, retain: false });
    await settle();
    const asked: { channel: string; action: string }[][] = [];
    const authorize = t.platform.authorize.bind(t.platform);
    t.platform.authorize = (p, checks) => (asked.push(checks), authorize(p, checks));
    t.platform.access.change('org-1');
    await settle();
    expect(asked).toHaveLength(1);
    expect(asked[0]!.map((x) => `${x.action} ${x.channel}`).sort()).toEqual(['messages:publish ch-1', 'messages:subscribe ch-1', 'messages:subscribe ch-2']);
  });

  it('a SUBSCRIBE whose answer was on its way while access changed is asked about again at its first delivery, not after authorizationTtlMs', async () => {
    const t = setup({ authorizationTtlMs: 5000 });
    const c = await t.connected(v, dev2);
    // The connection is removed, and the bridge told, while the SUBSCRIBE's "allowed" is on its way.
    t.platform.onAuthorize = () => {
      t.platform.onAuthorize = undefined;
      t.platform.channels.get('ch-1')!.subscribers.delete('dev-2');
      t.platform.access.change('org-1');
    };
    await c.subscribe(`${T}/x`);
    await t.platform.inject('ch-1', 'x', 'a'); // asks again (not held up)
    await settle();
    await c.drain();
    await t.platform.inject('ch-1', 'x', 'b');
    expect((await c.drain()).filter((p) => p.cmd === 'publish')).toEqual([]);
    expect(t.platform.channels.get('ch-1')!.subs.size).toBe(0);
  });

  it('a refusal counts though newer questions about the channel are still on their way (an org that keeps changing)', async () => {
    const t = setup({ authorizationTtlMs: 5000 });
    const c = await t.connected(v, dev2);
    await c.subscribe(`${T}/x`);
    t.platform.channels.get('ch-1')!.subscribers.delete('dev-2');
    let release!: () => void;
    t.platform.authorizeGate = new Promise<void>((r) => (release = r));
    t.platform.access.change('org-1'); // asked: the answer waits
    await settle();
    t.platform.down = true;
    t.platform.access.change('org-1'); // asked again: this one fails
    await settle();
    t.platform.down = false;
    t.platform.authorizeGate = undefined;
    release();
    await settle();
    expect(t.platform.channels.get('ch-1')!.subs.size).toBe(0);
    await t.platform.inject('ch-1', 'x', 'after');
    expect((await c.drain()).filter((p) => p.cmd === 'publish')).toEqual([]);
  });

  it('ends the connection when a `channels/+/…` SUBSCRIBE finds its credential refused (the channel list is not given to a rotated key)', async () => {
    const t = setup();
    const c = await t.connected(v, dev2);
    t.platform.rotateKey('key-2');
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'channels/+/messages/#', qos: 0 }] });
    await settle();
    if (v === 5) expect((await c.next('disconnect')).reasonCode).toBe(0x87);
    expect(await c.closedYet()).toBe(true);
    expect(t.logs.some((l) => l.includes('credential no longer valid: the device key was rotated'))).toBe(true);
  });

  it('a refusal that arrives after the client subscribed again (and was allowed) does not drop the new subscription', async () => {
    const t = setup({ authorizationTtlMs: 5000 });
    const c = await t.connected(v, dev2);
    await c.subscribe(`${T}/#`);
    t.platform.channels.get('ch-1')!.subscribers.delete('dev-2');
    await t.clock.advance(5000);
    // The re-check's answer (a refusal) is held back…
    const authorize = t.platform.authorize.bind(t.platform);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    t.platform.authorize = async (p, checks) => {
      const answer = await authorize(p, checks);
      await held;
      return answer;
    };
    await t.platform.inject('ch-1', 'a', 'one');
    await settle();
    // …while the connection is restored and the client subscribes again.
    t.platform.authorize = authorize;
    t.platform.channels.get('ch-1')!.subscribers.add('dev-2');
    await c.subscribe(`${T}/#`);
    release();
    await settle();
    await t.platform.inject('ch-1', 'b', 'two');
    expect((await c.drain()).flatMap((p) => (p.cmd === 'publish' ? [text(p)] : []))).toEqual(['one', 'two']);
    expect(t.logs.some((l) => l.includes('no longer allowed'))).toBe(false);
  });

  it('keeps a subscription whose re-check fails on the platform, and asks again after the bound', async () => {
    const t = setup({ authorizationTtlMs: 5000 });
    const c = await t.connected(v, dev2);
    await c.subscribe(`${T}/#`);
    await t.clock.advance(5000);
    const authorize = t.platform.authorize.bind(t.platform);
    t.platform.authorize = () => Promise.reject(new PlatformError(503, 'platform unreachable'));
    await t.platform.inject('ch-1', 'a', 'one');
    await settle();
    t.platform.authorize = authorize;
    await t.platform.inject('ch-1', 'b', 'two');
    expect((await c.drain()).flatMap((p) => (p.cmd === 'publish' ? [text(p)] : []))).toEqual(['one', 'two']);
    expect(t.logs.some((l) => l.includes('could not re-check'))).toBe(true);
    const calls = t.platform.authorizeCalls;
    await t.clock.advance(5000);
    await t.platform.inject('ch-1', 'c', 'three');
    await settle();
    expect(t.platform.authorizeCalls).toBe(calls + 1);
  });

  it('delivers a message matched by overlapping subscriptions once, at the highest QoS [MQTT-3.3.4-2]', async () => {
    const t = setup();
    const c = await t.connected(v);
    await c.subscribe({ topic: `${T}/#`, qos: 0 }, { topic: `${T}/a/+`, qos: 2 }, { topic: 'channels/+/messages/a/b', qos: 1 });
    await t.platform.inject('ch-1', 'a/b', 'once');
    const got = (await c.drain()).filter((p) => p.cmd === 'publish');
    expect(got.map((p) => [p.cmd === 'publish' && p.qos, p.cmd === 'publish' && text(p)])).toEqual([[2, 'once']]);
  });

  it('delivers at min(published, granted) [MQTT-3.8.4-8]: per subscription, then the highest of overlapping ones', async () => {
    const t = setup();
    const c = await t.connected(v);
    const pub = await t.connected(v, { ...dev2, clientId: 'publisher' });
    await c.subscribe({ topic: `${T}/q/#`, qos: 2 }, { topic: `${T}/q/one`, qos: 1 }, { topic: `${T}/low/#`, qos: 0 });
    for (const qos of [0, 1, 2] as const) pub.send({ cmd: 'publish', topic: `${T}/q/${qos}`, payload: Buffer.from(`q${qos}`), qos, dup: false, retain: false, ...(qos > 0 ? { messageId: 10 + qos } : {}) });
    pub.send({ cmd: 'publish', topic: `${T}/q/one`, payload: Buffer.from('one'), qos: 0, dup: false, retain: false });
    pub.send({ cmd: 'publish', topic: `${T}/low/2`, payload: Buffer.from('low'), qos: 2, dup: false, retain: false, messageId: 20 });
    // Without a QoS of its own (HTTP, CoAP): the granted one.
    await t.platform.inject('ch-1', 'q/http', 'http');
    const got = (await c.drain()).flatMap((p) => (p.cmd === 'publish' ? [[text(p), p.qos]] : []));
    expect(got.sort()).toEqual([['http', 2], ['low', 0], ['one', 0], ['q0', 0], ['q1', 1], ['q2', 2]]);
  });

  it('outbound QoS 1 and 2 state machines: PUBACK; PUBREC → PUBREL → PUBCOMP', async () => {
    const t = setup();
    const c = await t.connected(v);
    await c.subscribe({ topic: `${T}/one`, qos: 1 }, { topic: `${T}/two`, qos: 2 });
    await t.platform.inject('ch-1', 'one', 'q1');
    const p1 = await c.next('publish');
    expect([p1.qos, p1.dup]).toEqual([1, false]);
    c.send({ cmd: 'puback', messageId: p1.messageId! });
    await t.platform.inject('ch-1', 'two', 'q2');
    const p2 = await c.next('publish');
    expect(p2.qos).toBe(2);
    c.send({ cmd: 'pubrec', messageId: p2.messageId! });
    expect((await c.next('pubrel')).messageId).toBe(p2.messageId);
    c.send({ cmd: 'pubcomp', messageId: p2.messageId! });
    c.send({ cmd: 'pubrec', messageId: 4242 });
    const unknown = await c.next('pubrel');
    if (v === 5) expect(unknown.reasonCode).toBe(0x92);
    expect(c.errors).toEqual([]);
  });

  it('keeps at most the in-flight window outstanding and queues the rest, in order', async () => {
    const t = setup({ maxInflight: 2 });
    const c = await t.connected(v);
    await c.subscribe(`${T}/#`);
    for (let i = 0; i < 5; i++) await t.platform.inject('ch-1', 'n', String(i));
    const first = (await c.drain()).filter((p) => p.cmd === 'publish');
    expect(first.map((p) => p.cmd === 'publish' && text(p))).toEqual(['0', '1']);
    for (const p of first) c.send({ cmd: 'puback', messageId: p.messageId! });
    await settle();
    const next = (await c.drain()).map((p) => p.cmd === 'publish' && text(p));
    expect(next).toEqual(['2', '3']);
  });

  it('UNSUBSCRIBE stops deliveries and closes the platform subscriptions (v5: a code per filter)', async () => {
    const t = setup();
    const c = await t.connected(v);
    await c.subscribe(`${T}/#`);
    c.send({ cmd: 'unsubscribe', messageId: 9, unsubscriptions: [`${T}/#`, `${T}/never`] });
    const ack = await c.next('unsuback');
    expect(ack.messageId).toBe(9);
    if (v === 5) expect(ack.granted).toEqual([0, 0x11]);
    expect(t.platform.activeSubscriptions).toBe(0);
    await t.platform.inject('ch-1', 'x', 'gone');
    expect(await c.drain()).toEqual([]);
  });

  it('limits subscriptions per client (v5 0x97, 3.1.1 0x80); re-subscribing an existing filter is no new one', async () => {
    const t = setup({ maxSubscriptions: 2 });
    const c = await t.connected(v);
    expect((await c.subscribe(`${T}/a`, `${T}/b`, `${T}/c`, `${T}/a`)).granted).toEqual([1, 1, v === 5 ? 0x97 : 0x80, 1]);
  });

  it('limits the channels one wildcard filter may span', async () => {
    const t = setup({ maxChannelsPerFilter: 2 });
    const c = await t.connected(v);
    expect((await c.subscribe('channels/+/messages/#', 'channels/ch-1/messages/#')).granted).toEqual([v === 5 ? 0x97 : 0x80, 1]);
  });

  it('a re-SUBSCRIBE replaces the subscription (new QoS) and resends retained messages [MQTT-3.8.4-3]', async () => {
    const t = setup();
    await t.platform.inject('ch-1', 'r', 'kept', { retain: true });
    const c = await t.connected(v);
    await c.subscribe({ topic: `${T}/r`, qos: 0 });
    expect((await c.next('publish')).qos).toBe(0);
    await c.subscribe({ topic: `${T}/r`, qos: 1 });
    expect((await c.next('publish')).qos).toBe(1);
    expect(t.platform.activeSubscriptions).toBe(1);
  });

  it('shared subscriptions deliver each message to one member, round-robin; no retained; a member that drops hands back what it had not acknowledged', async () => {
    const t = setup();
    await t.platform.inject('ch-1', 'job', 'retained', { retain: true });
    const members = [await t.connected(v), await t.connected(v, dev2), await t.connected(v)];
    for (const m of members) expect((await m.subscribe(`$share/workers/${T}/job`)).granted).toEqual([1]);
    expect(t.platform.activeSubscriptions).toBe(1);
    for (let i = 0; i < 6; i++) await t.platform.inject('ch-1', 'job', `job ${i}`);
    const got = await Promise.all(members.map(async (m) => (await m.drain()).map((p) => p.cmd === 'publish' && text(p))));
    expect(got).toEqual([['job 0', 'job 3'], ['job 1', 'job 4'], ['job 2', 'job 5']]);
    // Its session ends with the connection: its unacknowledged jobs go to the others [MQTT 5 §4.8.2].
    members[1]!.drop();
    await members[1]!.closedYet();
    for (let i = 6; i < 8; i++) await t.platform.inject('ch-1', 'job', `job ${i}`);
    const rest = [...(await members[0]!.drain()), ...(await members[2]!.drain())];
    expect(rest.map((p) => p.cmd === 'publish' && text(p)).sort()).toEqual(['job 1', 'job 4', 'job 6', 'job 7']);
  });
});

describe('SUBSCRIBE and deliveries, MQTT 5 options', () => {
  it('Retain Handling: 0 always, 1 only for a new subscription, 2 never', async () => {
    const t = setup();
    await t.platform.inject('ch-1', 'r', 'kept', { retain: true });
    const c = await t.connected(5);
    await c.subscribe({ topic: `${T}/r`, qos: 1, rh: 1 });
    await c.next('publish');
    await c.subscribe({ topic: `${T}/r`, qos: 1, rh: 1 });
    await c.subscribe({ topic: `${T}/#`, qos: 1, rh: 2 });
    expect(await c.drain()).toEqual([]);
    await c.subscribe({ topic: `${T}/r`, qos: 1, rh: 0 });
    expect((await c.next('publish')).retain).toBe(true);
  });

  it('No Local: the client does not get its own messages back', async () => {
    const t = setup();
    const c = await t.connected(5);
    await c.subscribe({ topic: `${T}/#`, qos: 1, nl: true });
    c.publish(`${T}/mine`, 'mine', 1);
    await c.next('puback');
    await t.platform.inject('ch-1', 'theirs', 'theirs');
    const got = (await c.drain()).filter((p) => p.cmd === 'publish');
    expect(got.map((p) => p.cmd === 'publish' && text(p))).toEqual(['theirs']);
  });

  it('No Local is per client id: two clients of one device each get the other\'s messages, not their own [MQTT-3.8.3-3]', async () => {
    const t = setup();
    const a = await t.connected(5, { clientId: 'client-a' });
    const b = await t.connected(5, { clientId: 'client-b' });
    // Before any No Local subscription, a publish says nothing of its origin.
    a.publish(`${T}/before`, 'before', 1);
    await a.next('puback');
    expect(t.platform.published.at(-1)?.origin).toBeUndefined();
    await a.subscribe({ topic: `${T}/#`, qos: 1, nl: true });
    await b.subscribe({ topic: `${T}/#`, qos: 1, nl: true });
    a.publish(`${T}/x`, 'from a', 1);
    await a.next('puback');
    b.publish(`${T}/x`, 'from b', 1);
    await b.next('puback');
    const got = async (c: typeof a) => (await c.drain()).filter((p) => p.cmd === 'publish').map((p) => p.cmd === 'publish' && text(p));
    expect(await got(a)).toEqual(['from b']);
    expect(await got(b)).toEqual(['from a']);
  });

  it('No Local stays per client id when a persistent session resumes: what the client missed from another client of its device comes, its own does not', async () => {
    const t = setup();
    const session = { clientId: 'keeper', clean: false, properties: { sessionExpiryInterval: 300 } };
    const a = await t.connected(5, session);
    await a.subscribe({ topic: `${T}/#`, qos: 1, nl: true });
    a.publish(`${T}/x`, 'mine', 1);
    await a.next('puback');
    a.send({ cmd: 'disconnect' });
    await a.closedYet();
    const other = await t.connected(5, { clientId: 'other' });
    other.publish(`${T}/x`, 'theirs', 1);
    await other.next('puback');
    const back = t.client(5);
    expect((await back.connect(session)).sessionPresent).toBe(true);
    const got = (await back.drain()).filter((p) => p.cmd === 'publish');
    expect(got.map((p) => p.cmd === 'publish' && text(p))).toEqual(['theirs']);
  });

  /**
   * The will is published by the bridge on the session's behalf: a No Local subscription of the same
   * client id does not get it, as with Mosquitto 2 (checked against 2.0.11: X subscribed No Local,
   * its connection dropped, its will published, X resumed — no will; another client got it).
   */
  it.each([
    ['published when the connection dropped', 0, 'drop'],
    ['published after its delay, the client away', 5, 'drop'],
    ['published at a takeover', 0, 'takeover'],
  ] as const)('No Local: a resumed session does not get its own will — %s [MQTT-3.8.3-3]', async (_name, delay, how) => {
    const t = setup();
    const will = { topic: `${T}/status`, payload: Buffer.from('gone'), qos: 1 as const, retain: false, properties: { willDelayInterval: delay } };
    const session = { clientId: 'willing', clean: false, properties: { sessionExpiryInterval: 300 } };
    const observer = await t.connected(5, { clientId: 'observer' });
    await observer.subscribe({ topic: `${T}/#`, qos: 1 });
    const a = await t.connected(5, { ...session, will });
    await a.subscribe({ topic: `${T}/#`, qos: 1, nl: true });
    const back = t.client(5);
    if (how === 'drop') {
      a.drop();
      await a.closedYet();
      await t.clock.advance(delay * 1000);
      await settle();
      expect(publishedTexts(await observer.drain())).toEqual(['gone']);
      const other = await t.connected(5, { ...dev2, clientId: 'other' });
      other.publish(`${T}/x`, 'while away', 1);
      await other.next('puback');
      expect((await back.connect(session)).sessionPresent).toBe(true);
    } else {
      expect((await back.connect(session)).sessionPresent).toBe(true);
      expect((await a.next('disconnect')).reasonCode).toBe(0x8e);
      await settle();
      expect(publishedTexts(await observer.drain())).toEqual(['gone']);
      const other = await t.connected(5, { ...dev2, clientId: 'other' });
      other.publish(`${T}/x`, 'while away', 1);
      await other.next('puback');
    }
    await settle();
    expect(publishedTexts(await back.drain())).toEqual(['while away']);
    // The will carries its session's origin, as the client's own publishes do.
    expect(t.platform.published.find((p) => new TextDecoder().decode(p.payload) === 'gone')?.origin).toBe('dev-1\u0000willing');
  });

  it('the count of No Local subscriptions behind a publish’s origin stays right through re-SUBSCRIBEs with other options, UNSUBSCRIBE, a withdrawn channel and a resume', async () => {
    const t = setup();
    const session = { clientId: 'counted', clean: false, properties: { sessionExpiryInterval: 300 } };
    let c = await t.connected(5, session);
    const conn = () => [...t.server.connections].find((x) => x.clientId === 'counted' && x.phase === 'open')!;
    /** The counts and what a publish says of its origin now (a recount of the entries beside the count). */
    const state = async () => {
      c.publish(`${T}/probe`, 'p', 1);
      await c.next('puback');
      const subs = conn().subs;
      return { count: subs.noLocal, recount: [...subs.values()].filter((s) => s.noLocal).length, origin: t.platform.published.at(-1)?.origin };
    };
    const key = 'dev-1\u0000counted';
    const is = (n: number) => ({ count: n, recount: n, origin: n > 0 ? key : undefined });
    expect(await state()).toEqual(is(0));
    await c.subscribe({ topic: `${T}/a`, qos: 1, nl: true }, { topic: `${T}/b`, qos: 1, nl: true });
    expect(await state()).toEqual(is(2));
    await c.subscribe({ topic: `${T}/a`, qos: 1 }); // the same filter, No Local off
    expect(await state()).toEqual(is(1));
    await c.subscribe({ topic: `${T}/b`, qos: 0, nl: true }); // No Local kept, other options
    expect(await state()).toEqual(is(1));
    await c.subscribe({ topic: `${T}/a`, qos: 1, nl: true }); // on again
    expect(await state()).toEqual(is(2));
    c.send({ cmd: 'unsubscribe', messageId: 90, unsubscriptions: [`${T}/a`, `${T}/never`] });
    await c.next('unsuback');
    expect(await state()).toEqual(is(1));
    // A subscription on ch-2 alone, whose permission is then withdrawn: dropped, and no longer counted.
    await c.subscribe({ topic: 'channels/ch-2/messages/#', qos: 1, nl: true });
    expect(await state()).toEqual(is(2));
    t.platform.channels.get('ch-2')!.subscribers.delete('dev-1');
    await t.clock.advance(5000);
    await t.platform.inject('ch-2', 'x', 'asks again');
    await settle();
    expect(conn().subs.has('channels/ch-2/messages/#')).toBe(false);
    await c.drain();
    expect(await state()).toEqual(is(1));
    // Resumed: counted among the stored subscriptions until each is active again, then among the active ones.
    await c.subscribe({ topic: `${T}/c`, qos: 1 });
    c.drop();
    await c.closedYet();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const platformSubscribe = t.platform.subscribe.bind(t.platform);
    t.platform.subscribe = async (req, onMessage) => {
      await gate;
      return platformSubscribe(req, onMessage);
    };
    c = t.client(5);
    const acked = c.connect(session);
    await settle();
    expect([conn().resuming?.noLocal, conn().resuming?.size, conn().subs.noLocal, conn().origin]).toEqual([1, 2, 0, key]);
    release();
    expect((await acked).sessionPresent).toBe(true);
    await settle();
    expect(conn().resuming).toBeNull();
    expect(await state()).toEqual(is(1));
  });

  it('No Local on a shared subscription is a protocol error [MQTT-3.8.3-4]', async () => {
    const t = setup();
    const c = await t.connected(5);
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `$share/g/${T}/#`, qos: 1, nl: true }] });
    expect((await c.next('disconnect')).reasonCode).toBe(0x82);
  });

  it('honours the client Receive Maximum and Maximum Packet Size', async () => {
    const t = setup();
    const c = await t.connected(5, { properties: { receiveMaximum: 1, maximumPacketSize: 200 } });
    await c.subscribe(`${T}/#`);
    await t.platform.inject('ch-1', 'big', 'x'.repeat(500));
    await t.platform.inject('ch-1', 'a', 'small 1');
    await t.platform.inject('ch-1', 'a', 'small 2');
    const first = await c.drain();
    // The big one is discarded as if delivered [MQTT-3.1.2-25]; then one in flight at a time.
    expect(first.map((p) => p.cmd === 'publish' && text(p))).toEqual(['small 1']);
    c.send({ cmd: 'puback', messageId: first[0]!.messageId! });
    expect(text(await c.next('publish'))).toBe('small 2');
  });

  it('content type, payload format, user properties and the remaining message expiry go to subscribers', async () => {
    const t = setup();
    const c = await t.connected(5);
    await c.subscribe(`${T}/#`);
    await t.platform.inject('ch-1', 'a', '{"t":1}', { contentType: 'application/json', userProperties: { site: 'lab' }, messageExpiry: 60 });
    await t.platform.inject('ch-1', 'b', 'raw', { contentType: 'application/octet-stream' });
    await t.platform.inject('ch-1', 'c', 'hi', { contentType: 'text/plain; charset=utf-8' });
    // A text type over bytes that are not UTF-8 (HTTP and CoAP do not check): no Payload Format Indicator 1.
    await t.platform.inject('ch-1', 'd', '', { contentType: 'text/plain', payload: Uint8Array.of(0xff, 0xfe) });
    const [a, b, p, notUtf8] = (await c.drain()).filter((x) => x.cmd === 'publish');
    expect(a?.cmd === 'publish' && a.properties).toEqual({ contentType: 'application/json', userProperties: { site: 'lab' }, messageExpiryInterval: 60 });
    expect(b?.cmd === 'publish' && b.properties).toBeUndefined();
    expect(p?.cmd === 'publish' && p.properties).toEqual({ contentType: 'text/plain; charset=utf-8', payloadFormatIndicator: true });
    expect(notUtf8?.cmd === 'publish' && notUtf8.properties).toEqual({ contentType: 'text/plain' });
  });

  it('MQTT 5 request/response: Response Topic, Correlation Data, Payload Format Indicator and Content Type reach subscribers as published', async () => {
    const t = setup();
    const c = await t.connected(5);
    const pub = await t.connected(5, { ...dev2, clientId: 'requester' });
    await c.subscribe(`${T}/#`);
    const correlation = Buffer.from('req-1');
    pub.publish(`${T}/a`, '{"x":1}', 1, { properties: { payloadFormatIndicator: true, contentType: 'application/json', responseTopic: `${T}/replies`, correlationData: correlation } });
    pub.publish(`${T}/b`, 'hi', 1, { properties: { contentType: 'text/plain' } });
    pub.publish(`${T}/c`, 'hi', 1, { properties: { payloadFormatIndicator: true } });
    pub.publish(`${T}/d`, 'raw', 1, { properties: { payloadFormatIndicator: false, contentType: 'application/octet-stream' } });
    pub.publish(`${T}/e`, 'plain', 1);
    const got = (await c.drain()).flatMap((p) => (p.cmd === 'publish' ? [[p.topic.slice(T.length + 1), p.properties ?? {}]] : []));
    expect(got).toEqual([
      ['a', { payloadFormatIndicator: true, contentType: 'application/json', responseTopic: `${T}/replies`, correlationData: correlation }],
      ['b', { contentType: 'text/plain' }],
      ['c', { payloadFormatIndicator: true }],
      ['d', { payloadFormatIndicator: false, contentType: 'application/octet-stream' }],
      ['e', {}],
    ]);
  });

  it('an expired message waiting for the window is not sent [MQTT-3.3.2-5]', async () => {
    const t = setup();
    const c = await t.connected(5, { properties: { receiveMaximum: 1 } });
    await c.subscribe(`${T}/#`);
    await t.platform.inject('ch-1', 'a', 'first');
    await t.platform.inject('ch-1', 'a', 'short-lived', { messageExpiry: 5 });
    await t.platform.inject('ch-1', 'a', 'last');
    const [first] = await c.drain();
    await t.clock.advance(6000);
    c.send({ cmd: 'puback', messageId: first!.messageId! });
    expect(text(await c.next('publish'))).toBe('last');
  });

  it('a client that lets too much queue up is disconnected with 0x97 once it has caught up', async () => {
    const t = setup({ maxInflight: 2, maxQueued: 3 });
    const c = await t.connected(5);
    await c.subscribe(`${T}/#`);
    for (let i = 0; i < 8; i++) await t.platform.inject('ch-1', 'n', String(i));
    for (let round = 0; round < 3; round++) for (const p of await c.drain()) if (p.cmd === 'publish') c.send({ cmd: 'puback', messageId: p.messageId! });
    expect((await c.next('disconnect')).reasonCode).toBe(0x97);
  });

  it('retained messages on SUBSCRIBE, however many, wait their turn instead of making the subscriber a slow consumer; live ones still count', async () => {
    const t = setup({ maxInflight: 2, maxQueued: 3 });
    for (let i = 0; i < 20; i++) await t.platform.inject('ch-1', `r${i}`, String(i), { retain: true });
    const c = await t.connected(5);
    await c.subscribe(`${T}/#`);
    const got: string[] = [];
    for (let round = 0; round < 30 && got.length < 20; round++) {
      for (const p of await c.drain()) {
        expect(p.cmd).toBe('publish');
        got.push(text(p as Extract<Packet, { cmd: 'publish' }>));
        c.send({ cmd: 'puback', messageId: p.messageId! });
      }
    }
    expect(got).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
    // The bound still holds for live messages.
    for (let i = 0; i < 8; i++) await t.platform.inject('ch-1', 'n', String(i));
    for (let round = 0; round < 3; round++) for (const p of await c.drain()) if (p.cmd === 'publish') c.send({ cmd: 'puback', messageId: p.messageId! });
    expect((await c.next('disconnect')).reasonCode).toBe(0x97);
  });

});

describe('SUBSCRIBE options, MQTT 5', () => {
  it('Retain As Published: a live message keeps the publisher\'s RETAIN [MQTT-3.3.1-13]; without it RETAIN is 0 [MQTT-3.3.1-12]', async () => {
    const t = setup();
    const rap = await t.connected(5);
    const plain = await t.connected(5, dev2);
    await rap.subscribe({ topic: `${T}/#`, qos: 1, rap: true, rh: 2 });
    await plain.subscribe({ topic: `${T}/#`, qos: 1, rh: 2 });
    await t.platform.inject('ch-1', 'state', 'on', { retain: true });
    await t.platform.inject('ch-1', 'event', 'click');
    const got = [await rap.next('publish'), await rap.next('publish')].map((p) => [text(p), p.retain]);
    expect(got).toEqual([
      ['on', true],
      ['click', false],
    ]);
    const other = [await plain.next('publish'), await plain.next('publish')].map((p) => [text(p), p.retain]);
    expect(other).toEqual([
      ['on', false],
      ['click', false],
    ]);
  });
});
