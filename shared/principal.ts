/** Who is calling. Resolved once per request by `authenticate()`. */
export type Principal =
  /** `exp` (user sessions and app tokens): the access token's expiry, seconds since the epoch; a live session ends with it. */
  | { kind: 'user'; id: string; exp?: number }
  | { kind: 'key'; id: string; orgId: string; owner: { kind: 'user' | 'app'; id: string }; scopes: string[] }
  | { kind: 'app'; id: string; orgId: string; scopes: string[]; exp?: number }
  /**
   * `keyStamp`: the start of the SHA-256 of the device key it presented (16 hex digits), so a
   * live session can be told its key was rotated since (decideMessageAccess). Absent on principals
   * resolved before stamps existed: those are not re-checked for rotation.
   */
  | { kind: 'device'; id: string; orgId: string; keyStamp?: string };

/** The org a non-user principal is bound to; users can belong to many. */
export const boundOrg = (p: Principal): string | null => (p.kind === 'user' ? null : p.orgId);
