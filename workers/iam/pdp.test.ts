import { describe, expect, it } from 'vitest';
import { connectionGrants, decide, globMatch, isKnownActionPattern, roleGrants, type DecisionInput } from './pdp';

const base = (over: Partial<DecisionInput>): DecisionInput => ({
  action: 'devices:read',
  resource: 'devices/d1',
  grants: [],
  policies: [],
  scopes: null,
  ...over,
});

describe('globMatch', () => {
  it.each([
    ['*', 'anything/at:all', true],
    ['devices:*', 'devices:read', true],
    ['devices:*', 'channels:read', false],
    ['*:read', 'devices:read', true],
    ['devices/*', 'devices/abc', true],
    ['devices/*', 'devices', false],
    ['channels/a*z', 'channels/abcz', true],
    ['channels/a*z', 'channels/abczq', false],
    ['a*b*c', 'aXbYc', true],
    ['a*b*c', 'acb', false],
    ['exact', 'exact', true],
    ['exact', 'exactly', false],
  ])('%s vs %s → %s', (p, v, want) => expect(globMatch(p, v)).toBe(want));
});

describe('decide', () => {
  it('denies when nothing allows', () => {
    expect(decide(base({}))).toEqual({ allowed: false, reason: 'no_allow' });
  });
  it('allows on a role grant', () => {
    expect(decide(base({ grants: roleGrants('viewer') })).allowed).toBe(true);
    expect(decide(base({ action: 'devices:delete', grants: roleGrants('viewer') })).allowed).toBe(false);
  });
  it('explicit deny overrides every allow', () => {
    const d = decide(
      base({
        grants: roleGrants('owner'),
        policies: [{ effect: 'deny', actions: ['devices:*'], resources: ['devices/d1'] }],
      }),
    );
    expect(d).toEqual({ allowed: false, reason: 'explicit_deny' });
    // ...but only where it matches
    expect(decide(base({ resource: 'devices/d2', grants: roleGrants('owner'), policies: [{ effect: 'deny', actions: ['devices:*'], resources: ['devices/d1'] }] })).allowed).toBe(true);
  });
  it('a role\'s own deny (an admin may not delete the org) is told apart from a policy\'s', () => {
    expect(decide(base({ action: 'orgs:delete', resource: 'org', grants: roleGrants('admin') }))).toEqual({ allowed: false, reason: 'role_deny' });
    expect(decide(base({ action: 'orgs:delete', resource: 'org', grants: roleGrants('admin'), policies: [{ effect: 'deny', actions: ['orgs:*'], resources: ['*'] }] }))).toEqual({ allowed: false, reason: 'explicit_deny' });
  });
  it('a policy allow widens a role', () => {
    const p = [{ effect: 'allow' as const, actions: ['apps:read'], resources: ['apps/*'] }];
    expect(decide(base({ action: 'apps:create', resource: 'apps/*', grants: roleGrants('member') })).allowed).toBe(false);
    expect(decide(base({ action: 'apps:read', resource: 'apps/a1', grants: roleGrants('viewer'), policies: p })).allowed).toBe(true);
  });
  it('scopes narrow and never widen', () => {
    const owner = roleGrants('owner');
    expect(decide(base({ grants: owner, scopes: ['channels:read'] }))).toEqual({ allowed: false, reason: 'out_of_scope' });
    expect(decide(base({ grants: owner, scopes: ['devices:read@devices/d1'] })).allowed).toBe(true);
    expect(decide(base({ resource: 'devices/d2', grants: owner, scopes: ['devices:read@devices/d1'] })).allowed).toBe(false);
    // a scope that names something the holder cannot do grants nothing
    expect(decide(base({ action: 'devices:delete', grants: roleGrants('viewer'), scopes: ['*'] })).allowed).toBe(false);
    expect(decide(base({ grants: owner, scopes: [] })).allowed).toBe(false);
  });
  it('admins cannot delete the org; owners can', () => {
    expect(decide(base({ action: 'orgs:delete', resource: 'org', grants: roleGrants('admin') })).allowed).toBe(false);
    expect(decide(base({ action: 'orgs:delete', resource: 'org', grants: roleGrants('owner') })).allowed).toBe(true);
  });
  it('a connection allows exactly its types on its channel', () => {
    const g = connectionGrants([{ channelId: 'c1', canPublish: true, canSubscribe: false }]);
    expect(decide(base({ action: 'messages:publish', resource: 'channels/c1', grants: g })).allowed).toBe(true);
    expect(decide(base({ action: 'messages:subscribe', resource: 'channels/c1', grants: g })).allowed).toBe(false);
    expect(decide(base({ action: 'messages:read', resource: 'channels/c1', grants: g })).allowed).toBe(false);
    const s = connectionGrants([{ channelId: 'c1', canPublish: false, canSubscribe: true }]);
    expect(decide(base({ action: 'messages:read', resource: 'channels/c1', grants: s })).allowed).toBe(true);
    expect(decide(base({ action: 'messages:publish', resource: 'channels/c2', grants: g })).allowed).toBe(false);
  });
});

it('knows its actions', () => {
  expect(isKnownActionPattern('devices:*')).toBe(true);
  expect(isKnownActionPattern('*')).toBe(true);
  expect(isKnownActionPattern('devics:read')).toBe(false);
});
