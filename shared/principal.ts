/** Who is calling. Resolved once per request by `authenticate()`. */
export type Principal =
  /** `exp` (user sessions, app tokens, API keys that expire): the token's expiry, seconds since the epoch; a live session ends with it. */
  | { kind: 'user'; id: string; exp?: number }
  | { kind: 'key'; id: string; orgId: string; owner: { kind: 'user' | 'app'; id: string }; scopes: string[]; exp?: number }
  /** `epoch`: the app's token epoch when the token was issued (absent: 0); a secret rotation that revoked what was issued moved the app past it. */
  | { kind: 'app'; id: string; orgId: string; scopes: string[]; exp?: number; epoch?: number }
  /**
   * `keyStamp`: the start of the SHA-256 of the device key it presented (16 hex digits), so a
   * live session can be told its key was rotated since (decideMessageAccess). Absent on principals
   * resolved before stamps existed: those are not re-checked for rotation.
   */
  | { kind: 'device'; id: string; orgId: string; keyStamp?: string };

/** The org a non-user principal is bound to; users can belong to many. */
export const boundOrg = (p: Principal): string | null => (p.kind === 'user' ? null : p.orgId);

const identities = new WeakMap<Principal, string>();

/**
 * Who is decided alike: kind and id, and what can make two principals of one id get different
 * answers — an API key's or app token's scopes, a device's key stamp, a session's or app token's
 * expiry, an app token's epoch. Caches of decisions key on this (a rotated key's refusal must not reach its successor).
 * Built once per principal object.
 */
export function principalIdentity(p: Principal): string {
  let who = identities.get(p);
  if (who === undefined) {
    switch (p.kind) {
      case 'key':
        who = `key:${p.id}:${p.exp ?? ''}:${[...p.scopes].sort().join(' ')}`;
        break;
      case 'app':
        who = `app:${p.id}:${p.exp ?? ''}:${p.epoch ?? 0}:${[...p.scopes].sort().join(' ')}`;
        break;
      case 'device':
        who = `device:${p.id}:${p.keyStamp ?? ''}`;
        break;
      case 'user':
        who = `user:${p.id}:${p.exp ?? ''}`;
        break;
    }
    identities.set(p, who);
  }
  return who;
}
