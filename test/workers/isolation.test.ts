import { env } from 'cloudflare:workers';
import { beforeAll, describe, expect, it } from 'vitest';
import { newSecret, sha256Hex } from '../../workers/lib/crypto';
import { api, newOrg, newUser, type Res } from './helpers';

/**
 * Nothing of one org is ever visible to another. This walks EVERY route in /openapi.json with
 * another org's credentials (a user session, an API key with scope `*`, a device key) against the
 * first org's real resources, and requires "not found" with nothing of the first org in the answer.
 * A route without a sample request here fails the test, so new routes cannot skip it.
 */

const MARK = 'zz-secret-of-org-a';

interface World {
  org: string;
  device: string;
  channel: string;
  app: string;
  key: string;
  policy: string;
  member: string;
}

async function makeOrgA(): Promise<World> {
  const owner = await newUser('a-owner');
  const member = await newUser('a-member');
  const org = (await newOrg(owner.token, `${MARK}-org`)).id;
  await api('POST', `/orgs/${org}/members`, { token: owner.token, body: { email: member.email, role: 'member' } });
  const t = Date.now();
  const device = crypto.randomUUID();
  const channel = crypto.randomUUID();
  await env.DB.batch([
    env.DB.prepare('INSERT INTO devices (id, org_id, name, metadata, key_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)').bind(device, org, `${MARK}-device`, JSON.stringify({ m: MARK }), await sha256Hex(newSecret('efd')), t, t),
    env.DB.prepare('INSERT INTO channels (id, org_id, name, metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)').bind(channel, org, `${MARK}-channel`, JSON.stringify({ m: MARK }), t, t),
    env.DB.prepare('INSERT INTO connections (org_id, channel_id, device_id, can_publish, can_subscribe, created_at) VALUES (?, ?, ?, 1, 1, ?)').bind(org, channel, device, t),
  ]);
  const app = (await api('POST', `/orgs/${org}/apps`, { token: owner.token, body: { name: `${MARK}-app`, scopes: ['devices:read'] } })).body.id as string;
  const key = (await api('POST', `/orgs/${org}/keys`, { token: owner.token, body: { name: `${MARK}-key`, scopes: ['*'] } })).body.id as string;
  const policy = (await api('POST', `/orgs/${org}/policies`, { token: owner.token, body: { name: `${MARK}-policy`, statements: [{ effect: 'allow', actions: ['devices:read'], resources: ['*'] }] } })).body.id as string;
  await api('POST', `/orgs/${org}/policies/${policy}/attachments`, { token: owner.token, body: { principal_type: 'device', principal_id: device } });
  for (const x of [app, key, policy]) expect(x).toBeTypeOf('string');
  return { org, device, channel, app, key, policy, member: member.id };
}

/** A valid request body for each route that takes one (so the call reaches authorization, not validation). */
function sampleBody(route: string, a: World): unknown {
  const bodies: Record<string, unknown> = {
    'PATCH /orgs/{org}': { name: 'taken over' },
    'POST /orgs/{org}/members': { email: 'someone@example.com', role: 'viewer' },
    'PATCH /orgs/{org}/members/{user}': { role: 'viewer' },
    'POST /orgs/{org}/devices': { name: 'x' },
    'POST /orgs/{org}/devices/bulk': { devices: [{ name: 'x' }] },
    'PATCH /orgs/{org}/devices/{id}': { name: 'x' },
    'POST /orgs/{org}/channels': { name: 'x' },
    'POST /orgs/{org}/channels/bulk': { channels: [{ name: 'x' }] },
    'PATCH /orgs/{org}/channels/{id}': { name: 'x' },
    'PATCH /orgs/{org}/channels/{id}/limits': { maxPayloadBytes: 1 },
    'POST /orgs/{org}/connections': { channel_ids: [a.channel], device_ids: [a.device] },
    'DELETE /orgs/{org}/connections': { channel_ids: [a.channel], device_ids: [a.device] },
    'PUT /orgs/{org}/channels/{channel}/devices/{device}': { types: ['publish'] },
    'POST /orgs/{org}/apps': { name: 'x', scopes: ['devices:read'] },
    'PATCH /orgs/{org}/apps/{id}': { name: 'x' },
    'POST /orgs/{org}/keys': { name: 'x', scopes: ['devices:read'] },
    'POST /orgs/{org}/policies': { name: 'x', statements: [{ effect: 'allow', actions: ['devices:read'], resources: ['*'] }] },
    'PATCH /orgs/{org}/policies/{id}': { name: 'x' },
    'POST /orgs/{org}/policies/{id}/attachments': { principal_type: 'device', principal_id: a.device },
  };
  return bodies[route];
}

function fill(path: string, a: World): string {
  const segs = path.split('/');
  return segs
    .map((s, i) => {
      const prev = segs[i - 1];
      switch (s) {
        case '{org}':
          return a.org;
        case '{user}':
          return a.member;
        case '{channel}':
          return a.channel;
        case '{device}':
          return a.device;
        case '{principal_type}':
          return 'device';
        case '{principal_id}':
          return a.device;
        case '{seq}':
          return '1';
        case '{key}':
          return encodeURIComponent(`${a.device}\u0000client-1`); // an MQTT session key
        case '{id}':
          return { devices: a.device, channels: a.channel, apps: a.app, keys: a.key, policies: a.policy }[prev ?? ''] ?? a.channel;
        default:
          if (s.startsWith('{')) throw new Error(`no value for path parameter ${s} in ${path}: teach the isolation test`);
          return s;
      }
    })
    .join('/');
}

const leaks = (r: Res) => JSON.stringify(r.body ?? '').includes(MARK);

describe('org isolation', () => {
  let a: World;
  let routes: [string, string][];
  let foreign: { label: string; auth: { token?: string; device?: string } }[];

  beforeAll(async () => {
    a = await makeOrgA();
    const b = await newUser('b-owner');
    const orgB = (await newOrg(b.token, 'org-b')).id;
    const bKey = (await api('POST', `/orgs/${orgB}/keys`, { token: b.token, body: { name: 'b', scopes: ['*'] } })).body.key as string;
    const bDeviceKey = newSecret('efd');
    const t = Date.now();
    await env.DB.prepare("INSERT INTO devices (id, org_id, name, key_hash, created_at, updated_at) VALUES (?, ?, 'b-dev', ?, ?, ?)").bind(crypto.randomUUID(), orgB, await sha256Hex(bDeviceKey), t, t).run();
    foreign = [
      { label: 'user', auth: { token: b.token } },
      { label: 'api key', auth: { token: bKey } },
      { label: 'device', auth: { device: bDeviceKey } },
    ];
    const doc = (await api('GET', '/openapi.json')).body as { paths: Record<string, Record<string, unknown>> };
    routes = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => [m.toUpperCase(), path] as [string, string]));
  });

  it('walks every org-scoped route with another org\'s credentials and gets 404 with nothing leaked', async () => {
    const scoped = routes.filter(([, p]) => p.includes('{org}'));
    expect(scoped.length).toBeGreaterThan(20);
    const failures: string[] = [];
    for (const [method, path] of scoped) {
      const route = `${method} ${path}`;
      const body = ['POST', 'PUT', 'PATCH'].includes(method) || sampleBody(route, a) !== undefined ? sampleBody(route, a) : undefined;
      if (['POST', 'PUT', 'PATCH'].includes(method) && body === undefined && !/\/(secret|key)$/.test(path)) {
        failures.push(`${route}: no sample body — add one to sampleBody()`);
        continue;
      }
      for (const who of foreign) {
        const r = await api(method, fill(path, a), { ...who.auth, ...(body === undefined ? {} : { body }) });
        if (r.status !== 404 || leaks(r)) failures.push(`${route} as ${who.label}: ${r.status} ${JSON.stringify(r.body).slice(0, 120)}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('message routes treat another org\'s channel as missing', async () => {
    const messageRoutes = routes.filter(([, p]) => p.startsWith('/channels/'));
    expect(messageRoutes.length).toBeGreaterThan(0);
    const failures: string[] = [];
    for (const [method, path] of messageRoutes) {
      for (const who of foreign) {
        const url = fill(path.replace('{subtopic}', 'x'), a);
        const r = await api(method, url, { ...who.auth, ...(method === 'POST' ? { raw: 'hello', headers: { 'content-type': 'text/plain' } } : {}) });
        if (r.status !== 404 || leaks(r)) failures.push(`${method} ${path} as ${who.label}: ${r.status}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('lists show only the caller\'s own org', async () => {
    for (const who of foreign) {
      const r = await api('GET', '/orgs', who.auth);
      expect(r.status).toBe(200);
      expect(leaks(r)).toBe(false);
      expect(r.body.items.map((o: { id: string }) => o.id)).not.toContain(a.org);
    }
  });

  it('internal bridge routes refuse every org credential', async () => {
    for (const [method, path] of routes.filter(([, p]) => p.startsWith('/internal/'))) {
      for (const who of foreign) {
        const r = await api(method, fill(path, a), { ...who.auth, ...(method === 'GET' ? {} : { body: {} }) });
        expect(r.status, `${method} ${path} as ${who.label}`).toBe(401);
      }
    }
  });
});
