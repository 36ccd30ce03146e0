import { signToken } from '../auth/tokens';
import { hashPassword, newSecret, sha256Hex, verifyPassword } from '../lib/crypto';
import { ApiError, conflict, unauthorized } from '../lib/errors';
import { newId, now } from '../lib/ids';
import { attemptStatements, refuseThrottled, succeeded } from './throttle';

export const REFRESH_TTL_MS = 30 * 24 * 3600 * 1000;

export interface UserRow {
  id: string;
  email: string;
  password_hash: string;
  created_at: number;
}

export const publicUser = (u: Pick<UserRow, 'id' | 'email' | 'created_at'>) => ({ id: u.id, email: u.email, created_at: u.created_at });

export async function register(db: D1Database, email: string, password: string) {
  const id = newId();
  const t = now();
  const hash = await hashPassword(password);
  try {
    await db.prepare('INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?)').bind(id, email, hash, t, t).run();
  } catch (e) {
    if (String(e).includes('UNIQUE')) throw conflict('a user with this email already exists');
    throw e;
  }
  return { id, email, created_at: t };
}

function accessTtl(env: Env): number {
  const n = Number(env.ACCESS_TOKEN_TTL);
  return Number.isFinite(n) && n > 0 ? n : 900;
}

/**
 * A second use of a refresh token this soon after its first is taken for two tabs of one session
 * refreshing at once (refused, nothing else); later, for a copy in other hands (its family ends).
 */
export const REFRESH_REUSE_LEEWAY_MS = 10_000;

/** A new access JWT plus a fresh opaque refresh token (stored hashed), in `family` (a login starts one). */
export async function issueTokens(env: Env, userId: string, family: string = newId()) {
  const ttl = accessTtl(env);
  const refresh = newSecret('efr');
  const t = now();
  await env.DB.prepare('INSERT INTO refresh_tokens (token_hash, user_id, expires_at, created_at, family) VALUES (?, ?, ?, ?, ?)')
    .bind(await sha256Hex(refresh), userId, t + REFRESH_TTL_MS, t, family)
    .run();
  return { access_token: await signToken(env, { typ: 'user', sub: userId }, ttl), refresh_token: refresh, token_type: 'Bearer' as const, expires_in: ttl };
}

/** `client`: the caller's address as ./throttle.ts keys it (`clientOf`). */
export async function login(env: Env, email: string, password: string, client = '') {
  const t = now();
  const [users, ...attempt] = await env.DB.batch<Record<string, unknown>>([env.DB.prepare('SELECT id, password_hash FROM users WHERE email = ?').bind(email), ...attemptStatements(env.DB, email, client, t)]);
  // Before any hashing: a throttled guess costs neither side a PBKDF2 (./throttle.ts).
  refuseThrottled(attempt, t);
  const u = (users?.results[0] ?? null) as UserRow | null;
  // Hash even when the user is unknown so timing does not tell which emails exist.
  const ok = u ? await verifyPassword(password, u.password_hash) : (await hashPassword(password), false);
  if (!u || !ok) throw unauthorized('wrong email or password');
  await env.DB.batch(succeeded(env.DB, email, client));
  return issueTokens(env, u.id);
}

/**
 * Refresh tokens rotate: using one marks it used and issues the next of its family, so a token
 * works once. A used one given again (past REFRESH_REUSE_LEEWAY_MS) means two holders: the whole
 * family is revoked, and whoever holds its newest token must log in again (migrations/0007).
 */
export async function refresh(env: Env, token: string) {
  const db = env.DB;
  const hash = await sha256Hex(token);
  const t = now();
  const row = await db
    // A token from before families (migrations/0007) starts one named after itself, on its own row too.
    .prepare('UPDATE refresh_tokens SET used_at = ?2, family = COALESCE(family, token_hash) WHERE token_hash = ?1 AND used_at IS NULL RETURNING user_id, expires_at, family')
    .bind(hash, t)
    .first<{ user_id: string; expires_at: number; family: string | null }>();
  if (!row) {
    const used = await db.prepare('SELECT family, used_at FROM refresh_tokens WHERE token_hash = ?').bind(hash).first<{ family: string | null; used_at: number }>();
    if (!used) throw unauthorized('refresh token invalid or expired');
    if (t - used.used_at < REFRESH_REUSE_LEEWAY_MS) throw unauthorized('refresh token already used');
    await db.prepare('DELETE FROM refresh_tokens WHERE family = ?1 OR token_hash = ?2').bind(used.family ?? hash, hash).run();
    throw unauthorized('refresh token reused: every token of this session was revoked; log in again');
  }
  if (row.expires_at <= t) throw unauthorized('refresh token invalid or expired');
  // Used tokens are kept only while they could still be presented; this user's are swept here.
  await db.prepare('DELETE FROM refresh_tokens WHERE user_id = ? AND expires_at <= ?').bind(row.user_id, t).run();
  return issueTokens(env, row.user_id, row.family!);
}

/** Logging out ends the session: the token's whole family (a used token of it, too). */
export async function revokeRefresh(db: D1Database, token: string): Promise<void> {
  const hash = await sha256Hex(token);
  await db.prepare('DELETE FROM refresh_tokens WHERE token_hash = ?1 OR family = (SELECT COALESCE(family, token_hash) FROM refresh_tokens WHERE token_hash = ?1)').bind(hash).run();
}

export async function changePassword(db: D1Database, userId: string, oldPassword: string, newPassword: string) {
  const u = await db.prepare('SELECT password_hash FROM users WHERE id = ?').bind(userId).first<UserRow>();
  if (!u) throw unauthorized('user not found');
  // The session is good; the old password is not: 403, not 401 (RFC 9110 §15.5.2), or clients
  // would take it for an expired session and refresh.
  if (!(await verifyPassword(oldPassword, u.password_hash))) throw new ApiError(403, 'wrong_password', 'old password is wrong');
  // A password change ends every other session: all refresh tokens go.
  await db.batch([
    db.prepare('UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?').bind(await hashPassword(newPassword), now(), userId),
    db.prepare('DELETE FROM refresh_tokens WHERE user_id = ?').bind(userId),
  ]);
}
