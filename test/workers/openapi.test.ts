import { describe, expect, it } from 'vitest';
import committed from '../../docs/openapi.json';
import { api, expectProblem, newOrg, newUser } from './helpers';

describe('OpenAPI document', () => {
  it('docs/openapi.json is what the code serves (run `npm run docs:openapi` after changing a route)', async () => {
    const live = await api('GET', '/openapi.json');
    expect(live.status).toBe(200);
    expect(live.body).toEqual(committed);
  });

  it('describes every operation with a summary, a tag and its answers', async () => {
    const doc = (await api('GET', '/openapi.json')).body as { paths: Record<string, Record<string, { summary?: string; tags?: string[]; responses?: object }>> };
    const missing: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        if (!op.summary || !op.tags?.length || !op.responses || Object.keys(op.responses).length === 0) missing.push(`${method} ${path}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('gives every operation a unique camelCase operationId (generated clients name their methods by it)', async () => {
    const doc = (await api('GET', '/openapi.json')).body as { paths: Record<string, Record<string, { operationId?: string }>> };
    const ids = Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ op: `${method} ${path}`, id: op.operationId })));
    expect(ids.filter((o) => !o.id || !/^[a-z][a-zA-Z0-9]*$/.test(o.id))).toEqual([]);
    expect(ids.filter((o, i) => ids.findIndex((p) => p.id === o.id) !== i)).toEqual([]);
    expect(ids.find((o) => o.op === 'get /orgs/{org}/devices')?.id).toBe('listDevices');
  });

  it('declares the query parameters the message routes take: retain, the WebSocket options, authorization', async () => {
    type Op = { parameters?: { name: string; in: string }[] };
    const doc = (await api('GET', '/openapi.json')).body as { paths: Record<string, Record<string, Op>> };
    const query = (path: string, method: string) => (doc.paths[path]?.[method]?.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
    for (const path of ['/channels/{id}/messages', '/channels/{id}/messages/{subtopic}']) {
      expect(query(path, 'post').sort(), `post ${path}`).toEqual(['authorization', 'retain']);
      expect(query(path, 'get'), `get ${path}`).toEqual(expect.arrayContaining(['since', 'format', 'ack', 'authorization', 'vd', 'cursor']));
    }
    expect(query('/channels/{id}/payloads/{seq}', 'get')).toEqual(['authorization']);
  });

  it('has every public JSON request body refuse fields it does not know (internal bodies stay open for rolling upgrades; the OAuth token endpoint ignores them by RFC)', async () => {
    type Schema = { $ref?: string; type?: string; properties?: Record<string, Schema>; items?: Schema; additionalProperties?: unknown };
    const doc = (await api('GET', '/openapi.json')).body as { paths: Record<string, Record<string, { requestBody?: { content?: Record<string, { schema?: Schema }> } }>>; components: { schemas: Record<string, Schema> } };
    const resolve = (s: Schema): Schema => (s.$ref ? resolve(doc.components.schemas[s.$ref.replace('#/components/schemas/', '')]!) : s);
    const open: string[] = [];
    const walk = (s: Schema, where: string) => {
      const r = resolve(s);
      if (r.type === 'object' && r.properties) {
        if (r.additionalProperties !== false) open.push(where);
        for (const [k, v] of Object.entries(r.properties)) if (k !== 'metadata') walk(v, `${where}.${k}`);
      }
      if (r.items) walk(r.items, `${where}[]`);
    };
    let bodies = 0;
    for (const [path, ops] of Object.entries(doc.paths)) {
      // RFC 6749 §3.1: the token endpoint MUST ignore parameters it does not recognize.
      if (path.startsWith('/internal/') || path === '/oauth/token') continue;
      for (const [method, op] of Object.entries(ops)) {
        const schema = op.requestBody?.content?.['application/json']?.schema;
        if (!schema) continue;
        bodies++;
        walk(schema, `${method} ${path}`);
      }
    }
    expect(bodies).toBeGreaterThan(20);
    expect(open).toEqual([]);
  });

  it('declares Location on every 201 that creates one addressable thing', async () => {
    const doc = (await api('GET', '/openapi.json')).body as { paths: Record<string, Record<string, { operationId: string; responses: Record<string, { headers?: Record<string, unknown> }> }>> };
    // Tokens are not resources; bulk creates and connections answer many, or the request's own URL.
    const without = new Set(['login', 'refreshTokens', 'createChannels', 'createDevices', 'connect', 'connectDevice']);
    const missing: string[] = [];
    for (const ops of Object.values(doc.paths)) {
      for (const op of Object.values(ops)) if (op.responses['201'] && !without.has(op.operationId) && !op.responses['201'].headers?.Location) missing.push(op.operationId);
    }
    expect(missing).toEqual([]);
  });

  it('composes no schema (allOf) from a closed object: each part would refuse the others\' fields, and every answer with them', async () => {
    // JSON Schema 2020-12 (OpenAPI 3.1): `additionalProperties: false` sees only its own subschema's
    // properties, so allOf [closed {a}, {b}] matches no object holding both a and b.
    type Schema = { $ref?: string; allOf?: Schema[]; additionalProperties?: unknown };
    const doc = (await api('GET', '/openapi.json')).body as { components: { schemas: Record<string, Schema> } };
    const resolve = (s: Schema): Schema => (s.$ref ? resolve(doc.components.schemas[s.$ref.replace('#/components/schemas/', '')]!) : s);
    const closed: string[] = [];
    const walk = (v: unknown, where: string) => {
      if (!v || typeof v !== 'object') return;
      const s = v as Schema;
      if (Array.isArray(s.allOf) && s.allOf.length > 1) s.allOf.forEach((part, i) => resolve(part).additionalProperties === false && closed.push(`${where}.allOf[${i}]`));
      for (const [k, child] of Object.entries(v)) walk(child, `${where}.${k}`);
    };
    walk(doc, '$');
    expect(closed).toEqual([]);
  });

  it('describes a policy attachment as the API answers it', async () => {
    const owner = await newUser();
    const org = await newOrg(owner.token);
    const pol = await api('POST', `/orgs/${org.id}/policies`, { token: owner.token, body: { name: 'p', statements: [{ effect: 'deny', actions: ['devices:delete'], resources: ['*'] }] } });
    const att = await api('POST', `/orgs/${org.id}/policies/${pol.body.id}/attachments`, { token: owner.token, body: { principal_type: 'member', principal_id: owner.id } });
    expect(att.status).toBe(201);
    type Schema = { type?: string; properties?: Record<string, unknown>; required?: string[]; additionalProperties?: unknown };
    const doc = (await api('GET', '/openapi.json')).body as { components: { schemas: Record<string, Schema> } };
    const schema = doc.components.schemas.Attachment!;
    expect(schema.type).toBe('object');
    expect(Object.keys(att.body).sort()).toEqual(Object.keys(schema.properties!).sort());
    expect([...schema.required!].sort()).toEqual(Object.keys(att.body).sort());
  });

  it('declares Accept-Encoding on the publish routes\' 415, as the answer carries it (RFC 9110 §12.5.3)', async () => {
    type Op = { responses: Record<string, { headers?: Record<string, unknown> }> };
    const doc = (await api('GET', '/openapi.json')).body as { paths: Record<string, Record<string, Op>> };
    for (const path of ['/channels/{id}/messages', '/channels/{id}/messages/{subtopic}']) {
      expect(Object.keys(doc.paths[path]?.post?.responses['415']?.headers ?? {}), path).toEqual(['Accept-Encoding']);
    }
  });

  it('serves a browsable reference page at /docs', async () => {
    const page = await api('GET', '/docs');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(String(page.body)).toContain('/openapi.json');
  });

  it('answers a known path under a method it lacks with 405 and Allow (RFC 9110 §15.5.6), an unknown path with 404', async () => {
    const ch = crypto.randomUUID();
    for (const [method, path, allow] of [
      ['PUT', `/channels/${ch}/messages/j`, 'GET, HEAD, POST'],
      ['DELETE', `/channels/${ch}/messages`, 'GET, HEAD, POST'],
      ['POST', `/channels/${ch}/payloads/3`, 'GET, HEAD'],
      ['PATCH', '/health', 'GET, HEAD'],
    ] as const) {
      const r = await api(method, path);
      expect(expectProblem(r, 405).code, `${method} ${path}`).toBe('method_not_allowed');
      expect(r.headers.get('allow'), `${method} ${path}`).toBe(allow);
    }
    expect(expectProblem(await api('GET', '/nowhere/at/all'), 404).detail).toBe('no such route');
    expect(expectProblem(await api('PUT', '/channels'), 404).code).toBe('not_found');
  });
});
