import { segments, type Http } from './http';
import type * as T from './types';

/** Resource groups: one small object per API feature folder (workers/<feature>/). */

const listQuery = (q: T.ListQuery | T.DeviceListQuery = {}) => ({ ...q, metadata: typeof q.metadata === 'object' ? JSON.stringify(q.metadata) : q.metadata });

export const usersApi = (http: Http) => ({
  /** Register (no credential needed). */
  create: (body: T.UserCreate) => http.json<T.User>('POST', '/users', { json: body, auth: false }),
  me: () => http.json<T.Me>('GET', '/users/me'),
  changePassword: (old_password: string, new_password: string) => http.none('PATCH', '/users/me/password', { json: { old_password, new_password } }),
});

export const tokensApi = (http: Http) => ({
  /** Log in; does not change the client's credential (see `Edgeflux.login`). */
  create: (email: string, password: string) => http.json<T.Tokens>('POST', '/tokens', { json: { email, password }, auth: false }),
  refresh: (refresh_token: string) => http.json<T.Tokens>('POST', '/tokens/refresh', { json: { refresh_token }, auth: false }),
  revoke: (refresh_token: string) => http.none('POST', '/tokens/revoke', { json: { refresh_token }, auth: false }),
});

export const orgsApi = (http: Http) => ({
  create: (name: string) => http.json<T.Org>('POST', '/orgs', { json: { name } }),
  list: (q?: T.PageQuery) => http.json<T.Page<T.Org>>('GET', '/orgs', { query: q }),
  get: (org: string) => http.json<T.Org>('GET', segments('orgs', org)),
  rename: (org: string, name: string) => http.json<T.Org>('PATCH', segments('orgs', org), { json: { name } }),
  delete: (org: string) => http.none('DELETE', segments('orgs', org)),
});

/** Everything scoped by one org: `client.org(id).devices.create(…)`. */
export function orgScope(http: Http, org: string) {
  const at = (...p: string[]) => segments('orgs', org, ...p);
  return {
    id: org,
    get: () => http.json<T.Org>('GET', at()),
    members: {
      list: (q?: T.MemberQuery) => http.json<T.Page<T.Member>>('GET', at('members'), { query: q }),
      add: (body: T.MemberInvite) => http.json<T.Member>('POST', at('members'), { json: body }),
      setRole: (user: string, role: T.Role) => http.none('PATCH', at('members', user), { json: { role } }),
      remove: (user: string) => http.none('DELETE', at('members', user)),
    },
    devices: {
      create: (body: T.DeviceCreate) => http.json<T.DeviceWithKey>('POST', at('devices'), { json: body }),
      /** Up to 100 at once, all or nothing. */
      createMany: (devices: T.DeviceCreate[]) => http.json<{ items: T.DeviceWithKey[] }>('POST', at('devices', 'bulk'), { json: { devices } }).then((r) => r.items),
      list: (q?: T.DeviceListQuery) => http.json<T.Page<T.Device>>('GET', at('devices'), { query: listQuery(q) }),
      get: (id: string) => http.json<T.Device>('GET', at('devices', id)),
      update: (id: string, body: T.DeviceUpdate) => http.json<T.Device>('PATCH', at('devices', id), { json: body }),
      delete: (id: string) => http.none('DELETE', at('devices', id)),
      rotateKey: (id: string) => http.json<T.DeviceKey>('POST', at('devices', id, 'key')),
      channels: (id: string, q?: T.ListQuery) => http.json<T.Page<T.ConnectedChannel>>('GET', at('devices', id, 'channels'), { query: listQuery(q) }),
    },
    channels: {
      create: (body: T.ChannelCreate) => http.json<T.Channel>('POST', at('channels'), { json: body }),
      createMany: (channels: T.ChannelCreate[]) => http.json<{ items: T.Channel[] }>('POST', at('channels', 'bulk'), { json: { channels } }).then((r) => r.items),
      list: (q?: T.ListQuery) => http.json<T.Page<T.Channel>>('GET', at('channels'), { query: listQuery(q) }),
      get: (id: string) => http.json<T.Channel>('GET', at('channels', id)),
      update: (id: string, body: T.ChannelUpdate) => http.json<T.Channel>('PATCH', at('channels', id), { json: body }),
      delete: (id: string) => http.none('DELETE', at('channels', id)),
      devices: (id: string, q?: T.DeviceListQuery) => http.json<T.Page<T.ConnectedDevice>>('GET', at('channels', id, 'devices'), { query: listQuery(q) }),
      limits: (id: string) => http.json<T.ChannelLimits>('GET', at('channels', id, 'limits')),
      setLimits: (id: string, patch: T.ChannelLimitsPatch) => http.json<T.ChannelLimits>('PATCH', at('channels', id, 'limits'), { json: patch }),
    },
    connections: {
      /** Every channel × device pair; publish + subscribe unless `types` says otherwise. */
      connect: (body: T.Connect) => http.json<{ connections: T.Connection[] }>('POST', at('connections'), { json: body }).then((r) => r.connections),
      disconnect: (body: T.Disconnect) => http.none('DELETE', at('connections'), { json: body }),
      /** One pair; replaces the types of an existing connection. */
      put: (channel: string, device: string, types?: T.ConnectionType[]) => http.json<T.Connection>('PUT', at('channels', channel, 'devices', device), { json: types ? { types } : {} }),
      remove: (channel: string, device: string) => http.none('DELETE', at('channels', channel, 'devices', device)),
    },
    apps: {
      create: (body: T.AppCreate) => http.json<T.AppWithSecret>('POST', at('apps'), { json: body }),
      list: (q?: T.NameQuery) => http.json<T.Page<T.App>>('GET', at('apps'), { query: q }),
      get: (id: string) => http.json<T.App>('GET', at('apps', id)),
      update: (id: string, body: T.AppUpdate) => http.json<T.App>('PATCH', at('apps', id), { json: body }),
      delete: (id: string) => http.none('DELETE', at('apps', id)),
      /** `revokeIssued`: also revoke the keys the app issued and end its tokens at once (after a leak); no body without it, as before. */
      rotateSecret: (id: string, opts?: T.SecretRotation) => http.json<T.RotatedApp>('POST', at('apps', id, 'secret'), opts?.revokeIssued !== undefined ? { json: opts } : {}),
    },
    keys: {
      issue: (body: T.ApiKeyCreate) => http.json<T.ApiKeyWithSecret>('POST', at('keys'), { json: body }),
      list: (q?: T.NameQuery) => http.json<T.Page<T.ApiKey>>('GET', at('keys'), { query: q }),
      get: (id: string) => http.json<T.ApiKey>('GET', at('keys', id)),
      revoke: (id: string) => http.none('DELETE', at('keys', id)),
    },
    policies: {
      create: (body: T.PolicyCreate) => http.json<T.Policy>('POST', at('policies'), { json: body }),
      list: (q?: T.PageQuery) => http.json<T.Page<T.Policy>>('GET', at('policies'), { query: q }),
      get: (id: string) => http.json<T.Policy>('GET', at('policies', id)),
      update: (id: string, body: T.PolicyUpdate) => http.json<T.Policy>('PATCH', at('policies', id), { json: body }),
      delete: (id: string) => http.none('DELETE', at('policies', id)),
      attach: (id: string, body: T.AttachmentCreate) => http.json<T.Attachment>('POST', at('policies', id, 'attachments'), { json: body }),
      attachments: (id: string, q?: T.PageQuery) => http.json<T.Page<T.Attachment>>('GET', at('policies', id, 'attachments'), { query: q }),
      detach: (id: string, principal_type: T.PrincipalType, principal_id: string) => http.none('DELETE', at('policies', id, 'attachments', principal_type, principal_id)),
    },
  };
}
export type OrgScope = ReturnType<typeof orgScope>;
