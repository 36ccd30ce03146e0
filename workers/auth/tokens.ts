import { jwtVerify, SignJWT, errors as joseErrors } from 'jose';
import { ApiError, unauthorized } from '../lib/errors';

/**
 * Every bearer token Edgeflux issues is an HS256 JWT with a `typ` claim:
 *  - user: a short-lived session (`sub` = user id)
 *  - key:  an API key (`jti` = key id, `org`, `scp`, `own` = 'user'|'app', `sub` = owner id; `exp` optional)
 *  - app:  an OAuth2 client-credentials access token (`sub` = app id, `org`, `scp`; `ep`: the app's token epoch when issued, if not 0)
 */
export type TokenClaims =
  | { typ: 'user'; sub: string; exp?: number }
  | { typ: 'key'; sub: string; jti: string; org: string; scp: string[]; own: 'user' | 'app'; exp?: number }
  | { typ: 'app'; sub: string; org: string; scp: string[]; exp?: number; ep?: number };

const ISSUER = 'edgeflux';
const keys = new Map<string, Uint8Array>();

function secretKey(secret: string | undefined): Uint8Array {
  if (!secret || secret.length < 32) throw new ApiError(500, 'misconfigured', 'JWT_SECRET must be set to at least 32 characters');
  let k = keys.get(secret);
  if (!k) {
    k = new TextEncoder().encode(secret);
    keys.set(secret, k);
  }
  return k;
}

export async function signToken(env: Env, claims: TokenClaims, ttlSeconds: number | null): Promise<string> {
  const { sub, ...rest } = claims;
  delete (rest as { exp?: number }).exp; // set from ttlSeconds, never copied from claims that were read
  // One clock reading for both: read twice, a second boundary between them made a token live a second longer than its ttl.
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ ...rest }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setIssuer(ISSUER).setSubject(sub).setIssuedAt(now);
  if (claims.typ === 'key') jwt.setJti(claims.jti);
  if (ttlSeconds !== null) jwt.setExpirationTime(now + ttlSeconds);
  return jwt.sign(secretKey(env.JWT_SECRET));
}

const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');

export async function verifyToken(env: Env, token: string): Promise<TokenClaims> {
  let payload;
  try {
    ({ payload } = await jwtVerify(token, secretKey(env.JWT_SECRET), { issuer: ISSUER, algorithms: ['HS256'] }));
  } catch (e) {
    if (e instanceof joseErrors.JWTExpired) throw unauthorized('token expired');
    if (e instanceof ApiError) throw e;
    throw unauthorized('invalid token');
  }
  const { typ, sub, org, scp, own, jti, exp, ep } = payload as Record<string, unknown>;
  if (typeof sub !== 'string') throw unauthorized('invalid token');
  // Sessions and app tokens always expire, API keys when asked to; the time goes with the principal so live sessions end with it.
  const expiry = typeof exp === 'number' ? { exp } : {};
  if (typ === 'user') return { typ, sub, ...expiry };
  if (typ === 'app' && typeof org === 'string' && isStringArray(scp)) return { typ, sub, org, scp, ...expiry, ...(Number.isSafeInteger(ep) && (ep as number) > 0 ? { ep: ep as number } : {}) };
  if (typ === 'key' && typeof org === 'string' && isStringArray(scp) && typeof jti === 'string' && (own === 'user' || own === 'app')) {
    return { typ, sub, org, scp, own, jti, ...expiry };
  }
  throw unauthorized('invalid token');
}
