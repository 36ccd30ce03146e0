import { sha256Hex } from '../lib/crypto';
import { unauthorized } from '../lib/errors';
import type { Principal } from './principal';
import { verifyToken } from './tokens';

export type Credential = { scheme: 'bearer' | 'device'; value: string };

/** Device keys carry this prefix, so a bare credential can be told apart from a JWT. */
export const DEVICE_KEY_PREFIX = 'efd';

function parseValue(raw: string): Credential | null {
  const v = raw.trim();
  const sp = v.indexOf(' ');
  if (sp > 0) {
    const scheme = v.slice(0, sp).toLowerCase();
    const value = v.slice(sp + 1).trim();
    if (scheme === 'bearer' || scheme === 'device') return value ? { scheme, value } : null;
    return null;
  }
  if (!v) return null;
  return { scheme: v.startsWith(`${DEVICE_KEY_PREFIX}_`) ? 'device' : 'bearer', value: v };
}

/**
 * One rule for every HTTP/WebSocket request: the Authorization header; or, for browsers that
 * cannot set headers on a WebSocket, a `Sec-WebSocket-Protocol` entry `bearer.<token>` /
 * `device.<key>`, or an `authorization` query parameter with the header's value.
 */
export function extractCredential(req: Request): { credential: Credential | null; subprotocol?: string } {
  const header = req.headers.get('authorization');
  if (header !== null) {
    const credential = parseValue(header);
    if (!credential) throw unauthorized('malformed Authorization header: use "Bearer <token>" or "Device <key>"');
    return { credential };
  }
  const protocols = req.headers.get('sec-websocket-protocol');
  if (protocols) {
    for (const entry of protocols.split(',').map((s) => s.trim())) {
      const dot = entry.indexOf('.');
      const scheme = entry.slice(0, dot).toLowerCase();
      if (dot > 0 && (scheme === 'bearer' || scheme === 'device')) {
        return { credential: { scheme, value: entry.slice(dot + 1) }, subprotocol: entry };
      }
    }
  }
  const q = new URL(req.url).searchParams.get('authorization');
  if (q !== null) {
    const credential = parseValue(q);
    if (!credential) throw unauthorized('malformed authorization query parameter');
    return { credential };
  }
  return { credential: null };
}

// Isolate-local cache of key revocation state. A revoked key keeps working in an isolate for at
// most REVOCATION_CACHE_TTL seconds after revocation (docs/auth.md): bounded staleness instead of
// a D1 read on every request.
const keyCache = new Map<string, { ok: boolean; until: number }>();
const deviceCache = new Map<string, { id: string; orgId: string; keyStamp: string; until: number }>();

/** How much of a device key's SHA-256 a principal carries (Principal.keyStamp): 64 bits tell a rotated key apart. */
export const KEY_STAMP_LENGTH = 16;
const CACHE_MAX = 10_000;

export function cacheTtlMs(env: Env): number {
  const s = Number(env.REVOCATION_CACHE_TTL);
  return Number.isFinite(s) && s >= 0 ? s * 1000 : 5000;
}

function remember<V>(map: Map<string, V>, key: string, value: V): void {
  if (map.size >= CACHE_MAX) map.clear();
  map.set(key, value);
}

/** Forget cached answers now (used after revoke / rotate so this isolate reacts at once). */
export function forgetCredential(id: string): void {
  keyCache.delete(id);
  for (const [k, v] of deviceCache) if (v.id === id) deviceCache.delete(k);
}

async function keyIsLive(env: Env, jti: string): Promise<boolean> {
  const hit = keyCache.get(jti);
  const t = Date.now();
  if (hit && hit.until > t) return hit.ok;
  const row = await env.DB.prepare('SELECT revoked_at, expires_at FROM api_keys WHERE id = ?')
    .bind(jti)
    .first<{ revoked_at: number | null; expires_at: number | null }>();
  const ok = !!row && row.revoked_at === null && (row.expires_at === null || row.expires_at > t);
  remember(keyCache, jti, { ok, until: t + cacheTtlMs(env) });
  return ok;
}

export async function deviceByKey(env: Env, key: string): Promise<{ id: string; orgId: string; keyStamp: string } | null> {
  // Keyed by the key itself, not its hash: hashing on every request was ~7 % of the worker's time
  // per HTTP publish. (The key is in this isolate's memory for the request anyway.)
  const t = Date.now();
  const hit = deviceCache.get(key);
  if (hit && hit.until > t) return hit;
  const hash = await sha256Hex(key);
  const row = await env.DB.prepare('SELECT id, org_id FROM devices WHERE key_hash = ?').bind(hash).first<{ id: string; org_id: string }>();
  if (!row) return null;
  const found = { id: row.id, orgId: row.org_id, keyStamp: hash.slice(0, KEY_STAMP_LENGTH), until: t + cacheTtlMs(env) };
  remember(deviceCache, key, found);
  return found;
}

export async function resolvePrincipal(env: Env, cred: Credential): Promise<Principal> {
  if (cred.scheme === 'device') {
    const d = await deviceByKey(env, cred.value);
    if (!d) throw unauthorized('unknown device key');
    return { kind: 'device', id: d.id, orgId: d.orgId, keyStamp: d.keyStamp };
  }
  const claims = await verifyToken(env, cred.value);
  switch (claims.typ) {
    case 'user':
      return { kind: 'user', id: claims.sub, ...(claims.exp !== undefined ? { exp: claims.exp } : {}) };
    case 'app':
      return { kind: 'app', id: claims.sub, orgId: claims.org, scopes: claims.scp, ...(claims.exp !== undefined ? { exp: claims.exp } : {}), ...(claims.ep !== undefined ? { epoch: claims.ep } : {}) };
    case 'key':
      if (!(await keyIsLive(env, claims.jti))) throw unauthorized('API key revoked or expired');
      return { kind: 'key', id: claims.jti, orgId: claims.org, owner: { kind: claims.own, id: claims.sub }, scopes: claims.scp, ...(claims.exp !== undefined ? { exp: claims.exp } : {}) };
  }
}
