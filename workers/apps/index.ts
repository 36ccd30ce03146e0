import { createRoute } from '@hono/zod-openapi';
import { createMiddleware } from 'hono/factory';
import type { AppEnv } from '../app-env';
import { authorize } from '../auth';
import type { Principal } from '../auth/principal';
import { errors, jsonBody, jsonResponse, NameQuery, pageOf, SECURED, created, createdResponse } from '../lib/openapi';
import { router } from '../lib/router';
import { OrgParam } from '../orgs/schemas';
import { assertMayGrant, scopePairs } from '../policies/authority';
import { oauthRouter } from './oauth';
import { App, AppCreate, AppParam, AppUpdate, AppWithSecret, RotatedApp, SecretRotation } from './schemas';
import * as apps from './service';

/**
 * Applications: OAuth2 clients registered in an org. An app's scopes are its grants (it has no
 * role), so registering or widening them is granting: bounded by the caller's own authority.
 * The token endpoint (RFC 6749 §4.4) is in ./oauth.ts and mounted here.
 */
export const appsRouter = router();
const tags = ['apps'];
const security = SECURED;

/** Who answers for what a principal creates: a key acts for its owner. */
const accountable = (p: Principal) => (p.kind === 'key' ? p.owner.id : p.id);

appsRouter.openapi(
  createRoute({
    method: 'post',
    path: '/orgs/{org}/apps',
    operationId: 'createApp',
    tags,
    security,
    summary: 'Register an app (OAuth2 client); the client secret is shown once',
    description: 'Every scope must name known actions, and must be within what the caller may do (403 `exceeds_authority` otherwise).',
    request: { params: OrgParam, ...jsonBody(AppCreate) },
    responses: { 201: createdResponse(AppWithSecret, 'Registered'), ...errors(400, 401, 403, 404, 415, 422) },
  }),
  async (c) => {
    const { org } = c.req.valid('param');
    const { name, scopes } = c.req.valid('json');
    const access = await authorize(c, org, 'apps:create', 'apps/*');
    assertMayGrant(access, scopePairs(scopes), 'these scopes');
    const app = await apps.createApp(c.env.DB, org, name, [...new Set(scopes)], accountable(c.var.principal));
    return c.json(created(c, app, 'orgs', org, 'apps', app.id), 201);
  },
);

appsRouter.openapi(
  createRoute({ method: 'get', path: '/orgs/{org}/apps', operationId: 'listApps', tags, security, summary: 'List apps, filtered by name', request: { params: OrgParam, query: NameQuery }, responses: { 200: jsonResponse(pageOf(App, 'AppPage'), 'Apps'), ...errors(400, 401, 403, 404) } }),
  async (c) => {
    const { org } = c.req.valid('param');
    await authorize(c, org, 'apps:read', 'apps/*');
    return c.json(await apps.listApps(c.env.DB, org, c.req.valid('query')), 200);
  },
);

appsRouter.openapi(
  createRoute({ method: 'get', path: '/orgs/{org}/apps/{id}', operationId: 'getApp', tags, security, summary: 'Get an app (never its secret)', request: { params: AppParam }, responses: { 200: jsonResponse(App, 'App'), ...errors(401, 403, 404) } }),
  async (c) => {
    const { org, id } = c.req.valid('param');
    await authorize(c, org, 'apps:read', `apps/${id}`);
    return c.json(await apps.getApp(c.env.DB, org, id), 200);
  },
);

appsRouter.openapi(
  createRoute({
    method: 'patch',
    path: '/orgs/{org}/apps/{id}',
    operationId: 'updateApp',
    tags,
    security,
    summary: 'Rename an app or replace its scopes',
    description: "New scopes apply to the app's live tokens and keys on their next request: they never exceed the app's current scopes.",
    request: { params: AppParam, ...jsonBody(AppUpdate) },
    responses: { 200: jsonResponse(App, 'Updated'), ...errors(400, 401, 403, 404, 415, 422) },
  }),
  async (c) => {
    const { org, id } = c.req.valid('param');
    const patch = c.req.valid('json');
    const access = await authorize(c, org, 'apps:update', `apps/${id}`);
    await apps.getApp(c.env.DB, org, id);
    if (patch.scopes) assertMayGrant(access, scopePairs(patch.scopes), 'these scopes');
    return c.json(await apps.updateApp(c.env.DB, org, id, { ...patch, scopes: patch.scopes && [...new Set(patch.scopes)] }), 200);
  },
);

appsRouter.openapi(
  createRoute({
    method: 'delete',
    path: '/orgs/{org}/apps/{id}',
    operationId: 'deleteApp',
    tags,
    security,
    summary: 'Delete an app; its access tokens and API keys stop working at once',
    request: { params: AppParam },
    responses: { 204: { description: 'Deleted' }, ...errors(401, 403, 404) },
  }),
  async (c) => {
    const { org, id } = c.req.valid('param');
    await authorize(c, org, 'apps:delete', `apps/${id}`);
    await apps.deleteApp(c.env.DB, org, id);
    return c.body(null, 204);
  },
);

/**
 * The body is optional: an empty one is no options, whatever Content-Type came with it (clients that
 * always send `application/json`, or `text/plain`). The request goes on without body or content
 * type, so the validator takes `{}`; a body that is there is still read as JSON or refused (400/415).
 */
const emptyBodyIsNone = createMiddleware<AppEnv>(async (c, next) => {
  const raw = c.req.raw;
  const empty = raw.body === null || (await raw.clone().arrayBuffer()).byteLength === 0;
  if (empty && (raw.body !== null || raw.headers.has('content-type'))) {
    const headers = new Headers(raw.headers);
    headers.delete('content-type');
    headers.delete('content-length');
    c.req.raw = new Request(raw.url, { method: raw.method, headers });
  }
  await next();
});

appsRouter.openapi(
  createRoute({
    middleware: [emptyBodyIsNone] as const,
    method: 'post',
    path: '/orgs/{org}/apps/{id}/secret',
    operationId: 'rotateAppSecret',
    tags,
    security,
    summary: 'Rotate the client secret (shown once); the old secret stops working at once',
    description:
      'Without a body (an empty one, whatever its Content-Type), or with `revokeIssued` false, access tokens issued with the old secret stay valid until they expire (at most 1 hour) and the API keys the app issued go on. With `{"revokeIssued": true}` — after a leak — every API key the app issued is revoked and every access token it was issued ends at once, as when the app is deleted; `revoked_keys` counts the keys.',
    request: { params: AppParam, body: { required: false, content: { 'application/json': { schema: SecretRotation } } } },
    responses: { 201: createdResponse(RotatedApp, 'Rotated'), ...errors(400, 401, 403, 404, 415, 422) },
  }),
  async (c) => {
    const { org, id } = c.req.valid('param');
    const { revokeIssued } = c.req.valid('json') ?? {};
    await authorize(c, org, 'apps:update', `apps/${id}`);
    return c.json(created(c, await apps.rotateSecret(c.env.DB, org, id, { revokeIssued }), 'orgs', org, 'apps', id), 201);
  },
);

appsRouter.route('/', oauthRouter);
export { oauthRouter };
