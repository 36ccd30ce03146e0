import type { Context } from 'hono';
import type { AppEnv } from '../app-env';
import { cacheTtlMs } from '../auth/credentials';
import type { Principal } from '../auth/principal';
import { ApiError, forbidden, notFound, unauthorized } from '../lib/errors';
import { connectionGrants, decide, roleGrants, scopeToStatement, type Role, type Statement } from './pdp';

/** Everything the PDP needs about one principal inside one org, loaded once per request. */
export interface AccessContext {
  orgId: string;
  role: Role | null;
  grants: Statement[];
  policies: Statement[];
  scopes: string[] | null;
}

type PrincipalRef = { type: 'member' | 'device' | 'app' | 'key'; id: string };

async function attachedPolicies(db: D1Database, orgId: string, refs: PrincipalRef[]): Promise<Statement[]> {
  const where = refs.map(() => '(a.principal_type = ? AND a.principal_id = ?)').join(' OR ');
  const { results } = await db
    .prepare(`SELECT p.statements FROM policies p JOIN policy_attachments a ON a.policy_id = p.id WHERE a.org_id = ? AND (${where})`)
    .bind(orgId, ...refs.flatMap((r) => [r.type, r.id]))
    .all<{ statements: string }>();
  return results.flatMap((r) => JSON.parse(r.statements) as Statement[]);
}

async function memberRole(db: D1Database, orgId: string, userId: string): Promise<Role | null> {
  const row = await db.prepare('SELECT role FROM members WHERE org_id = ? AND user_id = ?').bind(orgId, userId).first<{ role: Role }>();
  return row?.role ?? null;
}

async function appScopes(db: D1Database, orgId: string, appId: string): Promise<string[] | null> {
  const row = await db.prepare('SELECT scopes FROM apps WHERE id = ? AND org_id = ?').bind(appId, orgId).first<{ scopes: string }>();
  return row ? (JSON.parse(row.scopes) as string[]) : null;
}

/** Loads the access context; an org the principal does not belong to is reported as not found (no existence leak). */
export async function loadAccess(db: D1Database, p: Principal, orgId: string): Promise<AccessContext> {
  switch (p.kind) {
    case 'user': {
      const role = await memberRole(db, orgId, p.id);
      if (!role) throw notFound('org');
      return { orgId, role, grants: roleGrants(role), policies: await attachedPolicies(db, orgId, [{ type: 'member', id: p.id }]), scopes: null };
    }
    case 'key': {
      if (p.orgId !== orgId) throw notFound('org');
      let grants: Statement[];
      let role: Role | null = null;
      if (p.owner.kind === 'user') {
        role = await memberRole(db, orgId, p.owner.id);
        if (!role) throw unauthorized('the owner of this API key is no longer a member of its org');
        grants = roleGrants(role);
      } else {
        const scopes = await appScopes(db, orgId, p.owner.id);
        if (!scopes) throw unauthorized('the app of this API key no longer exists');
        grants = scopes.map(scopeToStatement);
      }
      const ownerRef: PrincipalRef = { type: p.owner.kind === 'user' ? 'member' : 'app', id: p.owner.id };
      const policies = await attachedPolicies(db, orgId, [{ type: 'key', id: p.id }, ownerRef]);
      return { orgId, role, grants, policies, scopes: p.scopes };
    }
    case 'app': {
      if (p.orgId !== orgId) throw notFound('org');
      const scopes = await appScopes(db, orgId, p.id);
      if (!scopes) throw unauthorized('app no longer exists');
      return { orgId, role: null, grants: scopes.map(scopeToStatement), policies: await attachedPolicies(db, orgId, [{ type: 'app', id: p.id }]), scopes: p.scopes };
    }
    case 'device': {
      if (p.orgId !== orgId) throw notFound('org');
      const { results } = await db
        .prepare('SELECT channel_id, can_publish, can_subscribe FROM connections WHERE device_id = ?')
        .bind(p.id)
        .all<{ channel_id: string; can_publish: number; can_subscribe: number }>();
      const grants = connectionGrants(results.map((r) => ({ channelId: r.channel_id, canPublish: !!r.can_publish, canSubscribe: !!r.can_subscribe })));
      return { orgId, role: null, grants, policies: await attachedPolicies(db, orgId, [{ type: 'device', id: p.id }]), scopes: null };
    }
  }
}

const perRequest = new WeakMap<Request, Map<string, Promise<AccessContext>>>();

/** The caller's access context in `orgId` (memoised for the request). Throws 404 for foreign orgs. */
export function requireOrg(c: Context<AppEnv>, orgId: string): Promise<AccessContext> {
  let m = perRequest.get(c.req.raw);
  if (!m) perRequest.set(c.req.raw, (m = new Map()));
  let ctx = m.get(orgId);
  if (!ctx) m.set(orgId, (ctx = loadAccess(c.env.DB, c.var.principal, orgId)));
  return ctx;
}

export function check(access: AccessContext, action: string, resource: string): void {
  const d = decide({ action, resource, grants: access.grants, policies: access.policies, scopes: access.scopes });
  if (!d.allowed) {
    const why = d.reason === 'explicit_deny' ? 'denied by policy' : d.reason === 'role_deny' ? 'not allowed to your role' : d.reason === 'out_of_scope' ? 'outside the credential\'s scopes' : 'not permitted';
    throw forbidden(`${action} on ${resource}: ${why}`);
  }
}

/** The PDP gate every org-scoped route calls. Returns the access context for further checks. */
export async function authorize(c: Context<AppEnv>, orgId: string, action: string, resource: string): Promise<AccessContext> {
  const access = await requireOrg(c, orgId);
  check(access, action, resource);
  return access;
}

/** Routes that only a person may call (org creation, profile, password). */
export function requireUser(c: Context<AppEnv>): string {
  const p = c.var.principal;
  if (p.kind !== 'user') throw new ApiError(403, 'user_required', 'this route needs a user session token');
  return p.id;
}

/**
 * Isolate-local cache of allowed message decisions (principal × channel × action), the HTTP
 * counterpart of the bridge's: a publish loop over HTTP costs no D1 read per request. An entry
 * lives REVOCATION_CACHE_TTL seconds; any change to access made through this isolate (every
 * write under /orgs and /users/me) clears it at once, so other isolates lag by at most the TTL
 * (docs/auth.md). Refusals are not cached.
 */
const allowed = new Map<string, { orgId: string; until: number }>();
const ALLOWED_MAX = 10_000;
/** Bumped by every access change: a decision made across a change is not cached. */
let generation = 0;

/** Access may have changed (a write under /orgs or /users/me): decide again from now on. */
export function accessChanged(): void {
  generation++;
  allowed.clear();
}

/**
 * Everything a decision depends on besides D1: who, and — for API keys and app tokens, whose
 * tokens may each carry narrower scopes than their owner — exactly which scopes.
 */
function decisionKey(p: Principal, channelId: string, action: string): string {
  const scopes = p.kind === 'key' || p.kind === 'app' ? [...p.scopes].sort().join(' ') : '';
  return `${p.kind}\u0000${p.id}\u0000${scopes}\u0000${channelId}\u0000${action}`;
}

/**
 * A message decision for a principal known already (no request): the bridge's /internal/authorize,
 * and a channel actor re-checking its live WebSocket subscribers. An API key is checked to be still
 * live (it may have been revoked since it was resolved). Another org's channel is reported exactly
 * like a missing one.
 */
export async function decideMessageAccess(db: D1Database, principal: Principal, channel: string, action: string): Promise<MessageDecision> {
  return (await credentialRefusal(db, principal)) ?? decideChannelAccess(db, principal, channel, action);
}

export type MessageDecision = { allowed: boolean; status: number; reason?: string };

/**
 * The credential a live session presented is no longer good — an API key revoked or run out, a
 * device key rotated (Principal.keyStamp) or its device deleted, a user session or app token past
 * its `exp` — since it was resolved: a 401 refusal, which ends the session rather than one
 * channel's permission; else null.
 */
export async function credentialRefusal(db: D1Database, principal: Principal): Promise<MessageDecision | null> {
  if ((principal.kind === 'user' || principal.kind === 'app') && principal.exp !== undefined && principal.exp * 1000 <= Date.now()) {
    return { allowed: false, status: 401, reason: 'the access token expired' };
  }
  if (principal.kind === 'key') {
    const key = await db.prepare('SELECT revoked_at, expires_at FROM api_keys WHERE id = ?').bind(principal.id).first<{ revoked_at: number | null; expires_at: number | null }>();
    if (!key || key.revoked_at !== null || (key.expires_at !== null && key.expires_at <= Date.now())) return { allowed: false, status: 401, reason: 'the API key was revoked or has expired' };
  } else if (principal.kind === 'device' && principal.keyStamp !== undefined) {
    const device = await db.prepare('SELECT key_hash FROM devices WHERE id = ?').bind(principal.id).first<{ key_hash: string }>();
    if (!device) return { allowed: false, status: 401, reason: 'the device was deleted' };
    if (!device.key_hash.startsWith(principal.keyStamp)) return { allowed: false, status: 401, reason: 'the device key was rotated' };
  }
  return null;
}

/** decideMessageAccess without the credential check (for a batch of decisions that checked it once). */
export async function decideChannelAccess(db: D1Database, principal: Principal, channel: string, action: string): Promise<MessageDecision> {
  const row = await db.prepare('SELECT org_id FROM channels WHERE id = ?').bind(channel).first<{ org_id: string }>();
  if (!row) return { allowed: false, status: 404, reason: 'channel not found' };
  try {
    check(await loadAccess(db, principal, row.org_id), action, `channels/${channel}`);
    return { allowed: true, status: 200 };
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    return e.status === 404 ? { allowed: false, status: 404, reason: 'channel not found' } : { allowed: false, status: e.status, reason: e.message };
  }
}

/** Message routes are addressed by channel id alone: find the channel's org, then ask the PDP. */
export async function authorizeChannel(
  c: Context<AppEnv>,
  channelId: string,
  action: 'messages:publish' | 'messages:subscribe' | 'messages:read',
): Promise<{ orgId: string; publisher: string }> {
  const p = c.var.principal;
  const key = decisionKey(p, channelId, action);
  const now = Date.now();
  const hit = allowed.get(key);
  if (hit && hit.until > now) return { orgId: hit.orgId, publisher: p.id };
  const before = generation;
  const decided = await decideChannel(c, channelId, action);
  const ttl = cacheTtlMs(c.env);
  if (ttl > 0 && generation === before) {
    if (allowed.size >= ALLOWED_MAX) allowed.clear();
    allowed.set(key, { orgId: decided.orgId, until: now + ttl });
  }
  return decided;
}

async function decideChannel(c: Context<AppEnv>, channelId: string, action: 'messages:publish' | 'messages:subscribe' | 'messages:read'): Promise<{ orgId: string; publisher: string }> {
  const row = await c.env.DB.prepare('SELECT org_id FROM channels WHERE id = ?').bind(channelId).first<{ org_id: string }>();
  if (!row) throw notFound('channel');
  let access: AccessContext;
  try {
    access = await requireOrg(c, row.org_id);
  } catch (e) {
    // Another org's channel looks exactly like a missing one.
    if (e instanceof ApiError && e.status === 404) throw notFound('channel');
    throw e;
  }
  check(access, action, `channels/${channelId}`);
  return { orgId: row.org_id, publisher: c.var.principal.id };
}
