import { signToken } from '../auth/tokens';
import { hashPassword, newSecret, sha256Hex, verifyPassword } from '../lib/crypto';
import { ApiError, conflict, unauthorized } from '../lib/errors';
import { newId, now } from '../lib/ids';

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

/** A new access JWT plus a fresh opaque refresh token (stored hashed). */
export async function issueTokens(env: Env, userId: string) {
  const ttl = accessTtl(env);
  const refresh = newSecret('efr');
  const t = now();
  await env.DB.prepare('INSERT INTO refresh_tokens (token_hash, user_id, expires_at, created_at) VALUES (?, ?, ?, ?)')
    .bind(await sha256Hex(refresh), userId, t + REFRESH_TTL_MS, t)
    .run();
  return { access_token: await signToken(env, { typ: 'user', sub: userId }, ttl), refresh_token: refresh, token_type: 'Bearer' as const, expires_in: ttl };
}

export async function login(env: Env, email: string, password: string) {
  const u = await env.DB.prepare('SELECT id, password_hash FROM users WHERE email = ?').bind(email).first<UserRow>();
  // Hash even when the user is unknown so timing does not tell which emails exist.
  const ok = u ? await verifyPassword(password, u.password_hash) : (await hashPassword(password), false);
  if (!u || !ok) throw unauthorized('wrong email or password');
  return issueTokens(env, u.id);
}

/** Refresh tokens rotate: using one deletes it, so a stolen token works at most once. */
export async function refresh(env: Env, token: string) {
  const hash = await sha256Hex(token);
  const row = await env.DB.prepare('DELETE FROM refresh_tokens WHERE token_hash = ? RETURNING user_id, expires_at').bind(hash).first<{ user_id: string; expires_at: number }>();
  if (!row || row.expires_at <= now()) throw unauthorized('refresh token invalid or expired');
  return issueTokens(env, row.user_id);
}

export async function revokeRefresh(db: D1Database, token: string): Promise<void> {
  await db.prepare('DELETE FROM refresh_tokens WHERE token_hash = ?').bind(await sha256Hex(token)).run();
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
