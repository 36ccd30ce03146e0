/** Who is calling. Resolved once per request by `authenticate()`. */
export type Principal =
  | { kind: 'user'; id: string }
  | { kind: 'key'; id: string; orgId: string; owner: { kind: 'user' | 'app'; id: string }; scopes: string[] }
  | { kind: 'app'; id: string; orgId: string; scopes: string[] }
  | { kind: 'device'; id: string; orgId: string };

/** The org a non-user principal is bound to; users can belong to many. */
export const boundOrg = (p: Principal): string | null => (p.kind === 'user' ? null : p.orgId);
