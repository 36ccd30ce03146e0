import { createRoute } from '@hono/zod-openapi';
import { requireOrg } from '../auth';
import type { Principal } from '../auth/principal';
import { check, type AccessContext } from '../iam/access';
import { decide } from '../iam/pdp';
import { ApiError, unauthorized } from '../lib/errors';
import { errors, jsonBody, jsonResponse, NameQuery, pageOf, SECURED, created, createdResponse } from '../lib/openapi';
import { router } from '../lib/router';
import { OrgParam } from '../orgs/schemas';
import { assertMayGrant, scopePairs } from '../policies/authority';
import { ApiKey, ApiKeyCreate, ApiKeyParam, ApiKeyWithSecret } from './schemas';
import * as keys from './service';

/**
 * API keys: scoped, optionally expiring, revocable JWTs held by a user or an app.
 *
 * Ownership is a grant of its own: the holder of a key (the user or app it was issued to, or
 * another of that owner's keys) may always read and revoke it, limited only by the caller's
 * scopes. Everything else goes through the PDP: reading all of an org's keys needs `keys:read`
 * on `keys/*`, revoking someone else's needs `keys:delete` on `keys/{id}`. Callers without
 * `keys:read` on `keys/*` get their own keys from the list instead of a 403.
 */
export const keysRouter = router();
const tags = ['keys'];
const security = SECURED;

function ownerOf(p: Principal): keys.Owner | null {
  switch (p.kind) {
    case 'user':
      return { type: 'user', id: p.id };
    case 'app':
      return { type: 'app', id: p.id };
    case 'key':
      return { type: p.owner.kind, id: p.owner.id };
    case 'device':
      return null;
  }
}

const allowed = (access: AccessContext, action: string, resource: string) =>
  decide({ action, resource, grants: access.grants, policies: access.policies, scopes: access.scopes }).allowed;

/** Ownership grants the action on the caller's own keys; the caller's scopes still narrow it. */
function ownerMay(p: Principal, access: AccessContext, key: { owner_type: string; owner_id: string } | null, action: string, resource: string): boolean {
  const o = ownerOf(p);
  if (!o || (key && (key.owner_type !== o.type || key.owner_id !== o.id))) return false;
  return decide({ action, resource, grants: [{ effect: 'allow', actions: [action], resources: [resource] }], policies: [], scopes: access.scopes }).allowed;
}

keysRouter.openapi(
  createRoute({
    method: 'post',
    path: '/orgs/{org}/keys',
    operationId: 'issueApiKey',
    tags,
    security,
    summary: 'Issue an API key to the caller (a user or an app); the key is shown once',
    description:
      "A key acts as its owner, narrowed to its scopes: a user's key can never do more than the user's role and policies allow, " +
      "whatever its scopes say. An app may only issue keys within its own scopes. API keys and devices cannot issue keys (403).",
    request: { params: OrgParam, ...jsonBody(ApiKeyCreate) },
    responses: { 201: createdResponse(ApiKeyWithSecret, 'Issued'), ...errors(400, 401, 403, 404, 415, 422) },
  }),
  async (c) => {
    const { org } = c.req.valid('param');
    const { name, scopes, expires_in } = c.req.valid('json');
    const p = c.var.principal;
    // Another org's caller is told 404 (requireOrg), as everywhere; one of this org that may never
    // issue keys hears why before the permission check (a device holds no keys:create: 'forbidden' alone).
    const access = await requireOrg(c, org);
    if (p.kind === 'key' || p.kind === 'device') {
      throw new ApiError(403, 'issuer_not_allowed', `${p.kind === 'key' ? 'an API key' : 'a device'} cannot issue API keys; use a user session or an app token`);
    }
    check(access, 'keys:create', 'keys/*');
    if (p.kind === 'app') assertMayGrant(access, scopePairs(scopes), 'this key');
    const owner = ownerOf(p)!;
    const key = await keys.issueKey(c.env, org, owner, name, [...new Set(scopes)], expires_in, p.kind === 'app' ? (p.epoch ?? 0) : 0);
    if (!key) throw unauthorized("the app's tokens were revoked, or the app was deleted, while the key was being issued");
    return c.json(created(c, key, 'orgs', org, 'keys', key.id), 201);
  },
);

keysRouter.openapi(
  createRoute({
    method: 'get',
    path: '/orgs/{org}/keys',
    operationId: 'listApiKeys',
    tags,
    security,
    summary: "List API keys, filtered by name: all of the org's with keys:read on keys/*, otherwise the caller's own",
    request: { params: OrgParam, query: NameQuery },
    responses: { 200: jsonResponse(pageOf(ApiKey, 'ApiKeyPage'), 'API keys (never the keys themselves)'), ...errors(400, 401, 403, 404) },
  }),
  async (c) => {
    const { org } = c.req.valid('param');
    const q = c.req.valid('query');
    const p = c.var.principal;
    const access = await requireOrg(c, org);
    let owner: keys.Owner | null = null;
    if (!allowed(access, 'keys:read', 'keys/*')) {
      if (!ownerMay(p, access, null, 'keys:read', 'keys/*')) check(access, 'keys:read', 'keys/*');
      owner = ownerOf(p);
    }
    return c.json(await keys.listKeys(c.env.DB, org, owner, q), 200);
  },
);

keysRouter.openapi(
  createRoute({ method: 'get', path: '/orgs/{org}/keys/{id}', operationId: 'getApiKey', tags, security, summary: 'Get an API key (never the key itself)', request: { params: ApiKeyParam }, responses: { 200: jsonResponse(ApiKey, 'API key'), ...errors(401, 403, 404) } }),
  async (c) => {
    const { org, id } = c.req.valid('param');
    const access = await requireOrg(c, org);
    const key = await keys.getKey(c.env.DB, org, id);
    if (!ownerMay(c.var.principal, access, key, 'keys:read', `keys/${id}`)) check(access, 'keys:read', `keys/${id}`);
    return c.json(key, 200);
  },
);

keysRouter.openapi(
  createRoute({
    method: 'delete',
    path: '/orgs/{org}/keys/{id}',
    operationId: 'revokeApiKey',
    tags,
    security,
    summary: 'Revoke an API key (its owner always may; others need keys:delete)',
    description: 'Rejected at once by the worker isolate that revoked it, and everywhere within REVOCATION_CACHE_TTL seconds (docs/auth.md). Idempotent.',
    request: { params: ApiKeyParam },
    responses: { 204: { description: 'Revoked' }, ...errors(401, 403, 404) },
  }),
  async (c) => {
    const { org, id } = c.req.valid('param');
    const access = await requireOrg(c, org);
    const key = await keys.getKey(c.env.DB, org, id);
    if (!ownerMay(c.var.principal, access, key, 'keys:delete', `keys/${id}`)) check(access, 'keys:delete', `keys/${id}`);
    await keys.revokeKey(c.env.DB, org, id);
    return c.body(null, 204);
  },
);
