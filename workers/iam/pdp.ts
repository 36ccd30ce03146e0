/**
 * The policy decision point: one pure function that answers "may this principal do
 * this action on this resource?" for every route, the WebSocket upgrade and the bridge.
 *
 * Model (after AWS IAM):
 *  - grants:   what the principal holds by position — its org role, or a device's connections,
 *              or an app's registered scopes. Statements, usually allow.
 *  - policies: statements attached to the principal (and, for a key, to the key's owner).
 *  - scopes:   a key's or app token's scopes. They only narrow: an action must also match a scope.
 * An explicit deny anywhere wins; otherwise some allow must match; then scopes must match.
 */

export type Effect = 'allow' | 'deny';
export interface Statement {
  effect: Effect;
  actions: string[];
  resources: string[];
}
export type Role = 'owner' | 'admin' | 'member' | 'viewer';
export const ROLES: readonly Role[] = ['owner', 'admin', 'member', 'viewer'];

export interface DecisionInput {
  action: string;
  resource: string;
  grants: readonly Statement[];
  policies: readonly Statement[];
  /** null: not scoped (a user's own session). [] means "nothing". */
  scopes: readonly string[] | null;
}

export type Decision =
  | { allowed: true }
  | { allowed: false; reason: 'explicit_deny' | 'role_deny' | 'no_allow' | 'out_of_scope' };

/** `*` matches any run of characters (including `/` and `:`); everything else is literal. */
export function globMatch(pattern: string, value: string): boolean {
  if (pattern === '*') return true;
  if (!pattern.includes('*')) return pattern === value;
  const parts = pattern.split('*');
  const first = parts[0] ?? '';
  const last = parts[parts.length - 1] ?? '';
  if (!value.startsWith(first) || value.length < first.length + last.length || !value.endsWith(last)) return false;
  let pos = first.length;
  const end = value.length - last.length;
  for (let i = 1; i < parts.length - 1; i++) {
    const part = parts[i] ?? '';
    const at = value.indexOf(part, pos);
    if (at < 0 || at + part.length > end) return false;
    pos = at + part.length;
  }
  return true;
}

function matches(s: Statement, action: string, resource: string): boolean {
  return s.actions.some((a) => globMatch(a, action)) && s.resources.some((r) => globMatch(r, resource));
}

/** A scope is `action` or `action@resource`, both with `*` wildcards. */
export function scopeToStatement(scope: string): Statement {
  const at = scope.indexOf('@');
  return at < 0
    ? { effect: 'allow', actions: [scope], resources: ['*'] }
    : { effect: 'allow', actions: [scope.slice(0, at)], resources: [scope.slice(at + 1)] };
}

export function decide(input: DecisionInput): Decision {
  const { action, resource } = input;
  const all = [...input.grants, ...input.policies];
  // A deny wins over every allow; said apart so a refusal names where it came from (an admin's role vs a policy).
  if (input.policies.some((s) => s.effect === 'deny' && matches(s, action, resource))) return { allowed: false, reason: 'explicit_deny' };
  if (input.grants.some((s) => s.effect === 'deny' && matches(s, action, resource))) return { allowed: false, reason: 'role_deny' };
  if (!all.some((s) => s.effect === 'allow' && matches(s, action, resource))) {
    return { allowed: false, reason: 'no_allow' };
  }
  if (input.scopes !== null && !input.scopes.some((sc) => matches(scopeToStatement(sc), action, resource))) {
    return { allowed: false, reason: 'out_of_scope' };
  }
  return { allowed: true };
}

const READ = ['*:read'];
/** What each org role holds. Admins may do everything but delete the org; owner-only rules on roles live in the members routes. */
export function roleGrants(role: Role): Statement[] {
  switch (role) {
    case 'owner':
      return [{ effect: 'allow', actions: ['*'], resources: ['*'] }];
    case 'admin':
      return [
        { effect: 'allow', actions: ['*'], resources: ['*'] },
        { effect: 'deny', actions: ['orgs:delete'], resources: ['*'] },
      ];
    case 'member':
      return [
        {
          effect: 'allow',
          // Members revoke only their own keys (an ownership rule in workers/keys), not everyone's.
          actions: [...READ, 'devices:*', 'channels:*', 'connections:*', 'messages:*', 'keys:create'],
          resources: ['*'],
        },
      ];
    case 'viewer':
      // A viewer may issue keys: a key never holds more than its owner, so these are read-only too (dashboards).
      return [{ effect: 'allow', actions: [...READ, 'messages:subscribe', 'keys:create'], resources: ['*'] }];
  }
}

export interface ConnectionGrant {
  channelId: string;
  canPublish: boolean;
  canSubscribe: boolean;
}
/** A connection is itself an allow for that device on that channel. */
export function connectionGrants(conns: readonly ConnectionGrant[]): Statement[] {
  const pub = conns.filter((c) => c.canPublish).map((c) => `channels/${c.channelId}`);
  const sub = conns.filter((c) => c.canSubscribe).map((c) => `channels/${c.channelId}`);
  const out: Statement[] = [];
  if (pub.length) out.push({ effect: 'allow', actions: ['messages:publish'], resources: pub });
  // A device that may subscribe may also read the channel's stored history (Mainflux's reader did the same).
  if (sub.length) out.push({ effect: 'allow', actions: ['messages:subscribe', 'messages:read'], resources: sub });
  return out;
}

/** Every action the API knows, for validation of policies and scopes and for the docs. */
export const ACTIONS = [
  'orgs:read', 'orgs:update', 'orgs:delete',
  'members:read', 'members:create', 'members:update', 'members:delete',
  'devices:create', 'devices:read', 'devices:update', 'devices:delete',
  'channels:create', 'channels:read', 'channels:update', 'channels:delete',
  'connections:create', 'connections:read', 'connections:delete',
  'apps:create', 'apps:read', 'apps:update', 'apps:delete',
  'keys:create', 'keys:read', 'keys:delete',
  'policies:create', 'policies:read', 'policies:update', 'policies:delete',
  'messages:publish', 'messages:subscribe', 'messages:read',
] as const;
export type Action = (typeof ACTIONS)[number];

/** True when a pattern (with `*`) can match at least one known action — rejects typos in policies and scopes. */
export function isKnownActionPattern(pattern: string): boolean {
  return ACTIONS.some((a) => globMatch(pattern, a));
}
