/**
 * What the signed-in user may change in the org shown, so the console offers only that: the org
 * list carries the user's role there (Shell provides it). A hint for the interface; the API decides
 * every call (workers/iam/pdp.ts roleGrants, the key ownership rule in workers/keys).
 */
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';

export type Role = 'owner' | 'admin' | 'member' | 'viewer';
export type Managed = 'devices' | 'channels' | 'apps' | 'keys' | 'connections' | 'members';

export const RoleContext = createContext<Role | undefined>(undefined);
export const useRole = (): Role | undefined => useContext(RoleContext);

/** Whether `role` may create, edit and delete `what` (not known yet: offered, as before it is). */
export function mayManage(role: Role | undefined, what: Managed): boolean {
  if (role === undefined || role === 'owner' || role === 'admin') return true;
  if (what === 'keys') return true; // every role may issue keys; revoking is per key (mayRevoke)
  return role === 'member' && (what === 'devices' || what === 'channels' || what === 'connections');
}

/** Owners and admins revoke any key; everyone else only their own, and only one still live. */
export function mayRevoke(role: Role | undefined, me: string | undefined, key: { owner_type: string; owner_id: string; revoked_at: number | null; expires_at: number | null }, now = Date.now()): boolean {
  if (key.revoked_at !== null || (key.expires_at !== null && key.expires_at <= now)) return false;
  if (role === undefined || role === 'owner' || role === 'admin') return true;
  return key.owner_type === 'user' && key.owner_id === me;
}

/** The user id in a session's access token (its `sub`; read, not verified: the API verifies). */
export function userIdOf(token: string | undefined): string | undefined {
  const payload = token?.split('.')[1];
  if (!payload) return undefined;
  try {
    const claims = JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/'))) as { sub?: unknown };
    return typeof claims.sub === 'string' ? claims.sub : undefined;
  } catch {
    return undefined;
  }
}
