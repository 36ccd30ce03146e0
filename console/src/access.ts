/**
 * What the signed-in user may change in the org shown, so the console offers only that: the org
 * list carries the user's role there (Shell provides it). A hint for the interface; the API decides
 * every call (workers/iam/pdp.ts roleGrants, the key ownership rule in workers/keys).
 */
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';

export type Role = 'owner' | 'admin' | 'member' | 'viewer';
export type Managed = 'devices' | 'channels' | 'apps' | 'keys' | 'connections' | 'members' | 'messages' | 'limits';

export const RoleContext = createContext<Role | undefined>(undefined);
export const useRole = (): Role | undefined => useContext(RoleContext);

/**
 * Whether `role` may create, edit and delete `what` ('messages': publish; 'limits': change a channel's
 * settings, `limits:update`, which members lack so they cannot lift the rates that protect the org). A
 * role not known (the org list still loading, or an org the user is not in) offers nothing: the API
 * would refuse it.
 */
export function mayManage(role: Role | undefined, what: Managed): boolean {
  if (role === undefined) return false;
  if (role === 'owner' || role === 'admin') return true;
  if (what === 'keys') return true; // every role may issue keys; revoking is per key (mayRevoke)
  return role === 'member' && (what === 'devices' || what === 'channels' || what === 'connections' || what === 'messages');
}

/** Owners and admins revoke any key; everyone else only their own, and only one still live. */
export function mayRevoke(role: Role | undefined, me: string | undefined, key: { owner_type: string; owner_id: string; revoked_at: number | null; expires_at: number | null }, now = Date.now()): boolean {
  if (role === undefined || key.revoked_at !== null || (key.expires_at !== null && key.expires_at <= now)) return false;
  if (role === 'owner' || role === 'admin') return true;
  return key.owner_type === 'user' && key.owner_id === me;
}

/** The roles `role` may hand out: only an owner grants or takes away the owner role (workers/orgs/members.ts). */
export const grantableRoles = (role: Role | undefined): Role[] => (role === 'owner' ? ['owner', 'admin', 'member', 'viewer'] : role === 'admin' ? ['admin', 'member', 'viewer'] : []);

/** Whether `role` may change the role of, or remove, a member who is `of` (anyone may remove themselves). */
export const mayChangeMember = (role: Role | undefined, of: Role): boolean => grantableRoles(role).includes(of);

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
