import { describe, expect, it } from 'vitest';
import { grantableRoles, mayChangeMember, mayManage, mayRevoke } from './access';

describe('what the console offers per role', () => {
  it('offers nothing for a role it does not know (loading, or an org the user is not in)', () => {
    for (const what of ['devices', 'channels', 'apps', 'keys', 'connections', 'members', 'messages', 'limits'] as const) expect(mayManage(undefined, what), what).toBe(false);
    expect(mayRevoke(undefined, 'u1', { owner_type: 'user', owner_id: 'u1', revoked_at: null, expires_at: null })).toBe(false);
    expect(grantableRoles(undefined)).toEqual([]);
  });

  it('lets members publish and viewers not', () => {
    expect(mayManage('member', 'messages')).toBe(true);
    expect(mayManage('viewer', 'messages')).toBe(false);
    expect(mayManage('viewer', 'keys')).toBe(true);
  });

  it("lets only owners and admins change a channel's settings (limits:update)", () => {
    expect(mayManage('owner', 'limits')).toBe(true);
    expect(mayManage('admin', 'limits')).toBe(true);
    expect(mayManage('member', 'limits')).toBe(false);
    expect(mayManage('viewer', 'limits')).toBe(false);
  });

  it('leaves the owner role to owners: an admin neither grants it nor changes or removes an owner', () => {
    expect(grantableRoles('owner')).toEqual(['owner', 'admin', 'member', 'viewer']);
    expect(grantableRoles('admin')).toEqual(['admin', 'member', 'viewer']);
    expect(grantableRoles('member')).toEqual([]);
    expect(mayChangeMember('admin', 'owner')).toBe(false);
    expect(mayChangeMember('admin', 'admin')).toBe(true);
    expect(mayChangeMember('owner', 'owner')).toBe(true);
    expect(mayChangeMember('member', 'viewer')).toBe(false);
  });
});
