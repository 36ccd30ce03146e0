import type { AccessContext } from '../iam/access';
import { ACTIONS, globMatch, scopeToStatement, type Statement } from '../iam/pdp';
import { ApiError } from '../lib/errors';

/**
 * Bounded delegation: nobody hands out what they do not hold. An app's scopes become the app's
 * grants, and an allow policy adds to whoever it is attached to, so writing either is granting.
 * Without this rule an admin could mint an app with `*` (and so `orgs:delete`), or attach
 * `allow orgs:delete` to a member they control; a member granted `apps:create` would be an owner.
 *
 * The test is conservative (it may refuse a grant that a union of the holder's statements would
 * cover): for every known action the pattern names, some single allow of the holder must cover
 * the whole resource pattern, no deny of the holder may overlap it, and the holder's own scopes,
 * if any, must cover it.
 */

/** Could one string match both patterns? (`*` = any run of characters, as in globMatch.) */
export function globsOverlap(a: string, b: string): boolean {
  const w = b.length + 1;
  const memo = new Uint8Array((a.length + 1) * w); // 0 unknown, 1 no, 2 yes
  const go = (i: number, j: number): boolean => {
    const k = i * w + j;
    if (memo[k]) return memo[k] === 2;
    let r: boolean;
    if (i === a.length && j === b.length) r = true;
    else if (a[i] === '*') r = go(i + 1, j) || (j < b.length && go(i, j + 1));
    else if (b[j] === '*') r = go(i, j + 1) || (i < a.length && go(i + 1, j));
    else r = i < a.length && j < b.length && a[i] === b[j] && go(i + 1, j + 1);
    memo[k] = r ? 2 : 1;
    return r;
  };
  return go(0, 0);
}

// A literal match of the pattern `r` against the pattern `resource` (its `*` taken as a character)
// means r matches every expansion of `resource`: each `*` of `resource` is swallowed by a `*` of r.
const covers = (s: Statement, action: string, resource: string) =>
  s.actions.some((x) => globMatch(x, action)) && s.resources.some((r) => globMatch(r, resource));

/** The first known action within `actionPattern` on `resource` that the holder may not grant, or null. */
export function firstUngrantable(access: AccessContext, actionPattern: string, resource: string): string | null {
  const held = [...access.grants, ...access.policies];
  const scopes = access.scopes?.map(scopeToStatement) ?? null;
  for (const a of ACTIONS) {
    if (!globMatch(actionPattern, a)) continue;
    const denied = held.some((s) => s.effect === 'deny' && s.actions.some((x) => globMatch(x, a)) && s.resources.some((r) => globsOverlap(r, resource)));
    const allowed = held.some((s) => s.effect === 'allow' && covers(s, a, resource));
    const inScope = scopes === null || scopes.some((s) => covers(s, a, resource));
    if (denied || !allowed || !inScope) return a;
  }
  return null;
}

/** 403 unless the holder may grant every (action, resource) pair; `what` names what is being written. */
export function assertMayGrant(access: AccessContext, pairs: Iterable<readonly [string, string]>, what: string): void {
  const seen = new Set<string>();
  for (const [action, resource] of pairs) {
    const key = `${action}\n${resource}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const bad = firstUngrantable(access, action, resource);
    if (bad) throw new ApiError(403, 'exceeds_authority', `${what} would grant ${bad} on ${resource}, which you may not do yourself`);
  }
}

export const scopePairs = (scopes: readonly string[]) =>
  scopes.map(scopeToStatement).flatMap((s) => s.actions.flatMap((a) => s.resources.map((r) => [a, r] as const)));

export const allowPairs = (statements: readonly Statement[]) =>
  statements.filter((s) => s.effect === 'allow').flatMap((s) => s.actions.flatMap((a) => s.resources.map((r) => [a, r] as const)));
