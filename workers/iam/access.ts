import type { Context } from 'hono';
import type { AppEnv } from '../app-env';
import { cacheTtlMs } from '../auth/credentials';
import type { Principal } from '../auth/principal';
import { principalIdentity } from '../../shared/principal';
import { ApiError, forbidden, notFound, unauthorized } from '../lib/errors';
import { connectionGrants, decide, roleGrants, scopeToStatement, type Role, type Statement } from './pdp';
import { loadAccessRows, refKey, roleKey, subjectsOf, type AccessRows } from './rows';

/** Everything the PDP needs about one principal inside one org, loaded once per request. */
export interface AccessContext {
  orgId: string;
  role: Role | null;
  grants: Statement[];
  policies: Statement[];
  scopes: string[] | null;
}

/**
 * The access context of `p` in `orgId` from rows loaded for it (loadAccessRows with `orgs` or
 * `channels` naming it); an org the principal does not belong to is reported as not found (no
 * existence leak). The one place the PDP's inputs are assembled: HTTP routes, the bridge's batch
 * decisions and the channel actors' re-checks all come here.
 */
export function accessFrom(rows: AccessRows, p: Principal, orgId: string): AccessContext {
  const policies = () => subjectsOf(p).flatMap((s) => rows.policies.get(refKey(orgId, s.type, s.id)) ?? []);
  switch (p.kind) {
    case 'user': {
      const role = rows.roles.get(roleKey(orgId, p.id));
      if (!role) throw notFound('org');
      return { orgId, role, grants: roleGrants(role), policies: policies(), scopes: null };
    }
    case 'key': {
      if (p.orgId !== orgId) throw notFound('org');
      let grants: Statement[];
      let role: Role | null = null;
      if (p.owner.kind === 'user') {
        role = rows.roles.get(roleKey(orgId, p.owner.id)) ?? null;
        if (!role) throw unauthorized('the owner of this API key is no longer a member of its org');
        grants = roleGrants(role);
      } else {
        const scopes = appScopes(rows, orgId, p.owner.id);
        if (!scopes) throw unauthorized('the app of this API key no longer exists');
        grants = scopes.map(scopeToStatement);
      }
      return { orgId, role, grants, policies: policies(), scopes: p.scopes };
    }
    case 'app': {
      if (p.orgId !== orgId) throw notFound('org');
      const scopes = appScopes(rows, orgId, p.id);
      if (!scopes) throw unauthorized('app no longer exists');
      // Its secret was rotated with revokeIssued after this token was issued (workers/apps/service.ts).
      if ((p.epoch ?? 0) < (rows.apps.get(p.id)?.tokenEpoch ?? 0)) throw unauthorized("the app's tokens were revoked");
      return { orgId, role: null, grants: scopes.map(scopeToStatement), policies: policies(), scopes: p.scopes };
    }
    case 'device': {
      if (p.orgId !== orgId) throw notFound('org');
      return { orgId, role: null, grants: connectionGrants(rows.connections.get(p.id) ?? []), policies: policies(), scopes: null };
    }
  }
}

function appScopes(rows: AccessRows, orgId: string, appId: string): string[] | null {
  const app = rows.apps.get(appId);
  return app && app.orgId === orgId ? app.scopes : null;
}

/**
 * Loads the access context (one D1 round trip); an org the principal does not belong to is reported
 * as not found — at once, with no read, for a principal bound to another org (only a user's orgs
 * need D1 to tell).
 */
export async function loadAccess(db: D1Database, p: Principal, orgId: string): Promise<AccessContext> {
  if (p.kind !== 'user' && p.orgId !== orgId) throw notFound('org');
  return accessFrom(await loadAccessRows(db, [{ principal: p, orgs: [orgId] }]), p, orgId);
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
 * Everything a decision depends on besides D1: who, as principalIdentity says — for API keys and app
 * tokens, whose tokens may each carry narrower scopes than their owner, exactly which scopes; for an
 * app token also its epoch, so a token revoked by a secret rotation never shares the cached
 * "allowed" of the app's new token.
 */
function decisionKey(p: Principal, channelId: string, action: string): string {
  return `${principalIdentity(p)}\u0000${channelId}\u0000${action}`;
}

/**
 * A message decision for a principal known already (no request): a channel actor re-checking its
 * live WebSocket subscribers. An API key is checked to be still live (it may have been revoked since
 * it was resolved). Another org's channel is reported exactly like a missing one.
 */
export async function decideMessageAccess(db: D1Database, principal: Principal, channel: string, action: string): Promise<MessageDecision> {
  return (await decideMessages(db, [{ principal, checks: [{ channel, action }] }]))[0]!.results[0]!;
}

export type MessageDecision = { allowed: boolean; status: number; reason?: string };

export interface MessageQuestion<A extends string = string> {
  principal: Principal;
  checks: readonly { channel: string; action: A }[];
}
export interface MessageAnswer<A extends string = string> {
  results: ({ channel: string; action: A } & MessageDecision)[];
  /** The credential itself is no longer good: every result is this refusal. */
  refused?: MessageDecision;
}

/**
 * Message decisions for many principals at once (the bridge's /internal/authorize, a batch of
 * sessions): every row needed is read in one D1 round trip, then each check is decided in memory by
 * the same rules as one alone. A principal whose credential is refused gets that refusal for every
 * check; with no checks, only whether its credential is good.
 */
export async function decideMessages<A extends string>(db: D1Database, questions: readonly MessageQuestion<A>[]): Promise<MessageAnswer<A>[]> {
  const rows = await loadAccessRows(db, questions.map(({ principal, checks }) => ({ principal, credential: true, channels: checks.map((c) => c.channel) })));
  const now = Date.now();
  return questions.map(({ principal, checks }) => {
    const refused = refusalFrom(rows, principal, now);
    if (refused) return { results: checks.map(({ channel, action }) => ({ channel, action, ...refused })), refused };
    const accessIn = accessPerOrg(rows, principal);
    return { results: checks.map(({ channel, action }) => ({ channel, action, ...channelDecision(rows, accessIn, channel, action) })) };
  });
}

/**
 * The principal's access context in an org, or why it has none there, assembled once per org however
 * many of its checks name that org's channels (an item may carry a hundred).
 */
function accessPerOrg(rows: AccessRows, principal: Principal): (org: string) => AccessContext | ApiError {
  const memo = new Map<string, AccessContext | ApiError>();
  return (org) => {
    let access = memo.get(org);
    if (!access) {
      try {
        access = accessFrom(rows, principal, org);
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        access = e;
      }
      memo.set(org, access);
    }
    return access;
  };
}

/**
 * The credential a live session presented is no longer good — an API key revoked or run out, a
 * device key rotated (Principal.keyStamp) or its device deleted, a user session or app token past
 * its `exp`, an app token whose app was deleted or whose secret was rotated with revokeIssued after
 * it was issued (Principal.epoch) — since it was resolved: a 401 refusal, which ends the session
 * rather than one channel's permission; else null. `rows` loaded with `credential`.
 */
export function refusalFrom(rows: AccessRows, principal: Principal, now: number): MessageDecision | null {
  if ((principal.kind === 'user' || principal.kind === 'app') && principal.exp !== undefined && principal.exp * 1000 <= now) {
    return { allowed: false, status: 401, reason: 'the access token expired' };
  }
  if (principal.kind === 'key') {
    const key = rows.keys.get(principal.id);
    if (!key || key.revokedAt !== null || (key.expiresAt !== null && key.expiresAt <= now)) return { allowed: false, status: 401, reason: 'the API key was revoked or has expired' };
  } else if (principal.kind === 'app') {
    const app = rows.apps.get(principal.id);
    if (!app || app.orgId !== principal.orgId) return { allowed: false, status: 401, reason: 'app no longer exists' };
    if ((principal.epoch ?? 0) < app.tokenEpoch) return { allowed: false, status: 401, reason: "the app's tokens were revoked" };
  } else if (principal.kind === 'device' && principal.keyStamp !== undefined) {
    const keyHash = rows.devices.get(principal.id);
    if (keyHash === undefined) return { allowed: false, status: 401, reason: 'the device was deleted' };
    if (!keyHash.startsWith(principal.keyStamp)) return { allowed: false, status: 401, reason: 'the device key was rotated' };
  }
  return null;
}

/** A channel's decision without the credential check, from rows loaded with the channel. */
function channelDecision(rows: AccessRows, accessIn: (org: string) => AccessContext | ApiError, channel: string, action: string): MessageDecision {
  const org = rows.channelOrgs.get(channel);
  if (org === undefined) return { allowed: false, status: 404, reason: 'channel not found' };
  try {
    const access = accessIn(org);
    if (access instanceof ApiError) throw access;
    check(access, action, `channels/${channel}`);
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

/**
 * The rows a message route decides from: the channel's org and the caller's access in it, in one
 * D1 round trip (memoised for the request: a WebSocket subscribe asks about publish too).
 */
const channelRowsPerRequest = new WeakMap<Request, Map<string, Promise<AccessRows>>>();

function channelRows(c: Context<AppEnv>, channelId: string): Promise<AccessRows> {
  let m = channelRowsPerRequest.get(c.req.raw);
  if (!m) channelRowsPerRequest.set(c.req.raw, (m = new Map()));
  let rows = m.get(channelId);
  if (!rows) m.set(channelId, (rows = loadAccessRows(c.env.DB, [{ principal: c.var.principal, channels: [channelId] }])));
  return rows;
}

async function decideChannel(c: Context<AppEnv>, channelId: string, action: 'messages:publish' | 'messages:subscribe' | 'messages:read'): Promise<{ orgId: string; publisher: string }> {
  const p = c.var.principal;
  const rows = await channelRows(c, channelId);
  const orgId = rows.channelOrgs.get(channelId);
  if (orgId === undefined) throw notFound('channel');
  let access: AccessContext;
  try {
    access = accessFrom(rows, p, orgId);
  } catch (e) {
    // Another org's channel looks exactly like a missing one.
    if (e instanceof ApiError && e.status === 404) throw notFound('channel');
    throw e;
  }
  check(access, action, `channels/${channelId}`);
  return { orgId, publisher: p.id };
}
