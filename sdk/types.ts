/**
 * The SDK's types, derived from the zod schemas the workers validate with (type-only imports:
 * nothing from workers/ ends up in the built SDK). An API change that breaks a client therefore
 * breaks `npm run typecheck`.
 */
import type { SenmlRecord as ResolvedSenmlRecord } from '../shared/senml/types';
import type { z } from '@hono/zod-openapi';
import type { App as AppS, AppCreate as AppCreateS, AppUpdate as AppUpdateS, AppWithSecret as AppWithSecretS, RotatedApp as RotatedAppS, SecretRotation as SecretRotationS, TokenResponse } from '../workers/apps/schemas';
import type { Channel as ChannelS, ChannelCreate as ChannelCreateS, ChannelLimits as ChannelLimitsS, ChannelLimitsPatch as ChannelLimitsPatchS, ChannelUpdate as ChannelUpdateS } from '../workers/channels/schemas';
import type { Connection as ConnectionS, ConnectedChannel as ConnectedChannelS, ConnectedDevice as ConnectedDeviceS, ConnectRequest, ConnectionType as ConnectionTypeS, DisconnectRequest } from '../workers/connections/schemas';
import type { Device as DeviceS, DeviceCreate as DeviceCreateS, DeviceUpdate as DeviceUpdateS, DeviceWithKey as DeviceWithKeyS, KeyRotated } from '../workers/devices/schemas';
import type { ApiKey as ApiKeyS, ApiKeyCreate as ApiKeyCreateS, ApiKeyWithSecret as ApiKeyWithSecretS } from '../workers/keys/schemas';
import type { DeviceListQuery as DeviceListQueryS, ListQuery as ListQueryS, NameQuery as NameQueryS, PageQuery as PageQueryS, ProblemSchema } from '../workers/lib/openapi';
import type { Member as MemberS, MemberInvite as MemberInviteS, Org as OrgS, RoleSchema } from '../workers/orgs/schemas';
import type { Attachment as AttachmentS, AttachmentOut, Policy as PolicyS, PolicyCreate as PolicyCreateS, PolicyUpdate as PolicyUpdateS, PrincipalType as PrincipalTypeS, StatementSchema } from '../workers/policies/schemas';
import type { QuerySchema } from '../workers/query/params';
import type { Credentials, Tokens as TokensS, User as UserS } from '../workers/users/schemas';
import type { EnvelopeJson } from '../shared/envelope';

/** An RFC 9457 problem document, the one error shape of the API. */
export type Problem = z.infer<typeof ProblemSchema>;

export interface Page<T> {
  total: number;
  offset: number;
  limit: number;
  items: T[];
}
export type PageQuery = Partial<z.input<typeof PageQueryS>> & { offset?: number; limit?: number };
/** A list's order: `sort` by creation (the default) or name (case-insensitive), `order` asc (the default) or desc. */
export type SortQuery = Partial<Pick<z.output<typeof NameQueryS>, 'sort' | 'order'>>;
/** Listing channels: paging, a sort, a name substring and a metadata containment filter. */
export type ListQuery = PageQuery & Omit<Partial<z.output<typeof ListQueryS>>, 'metadata' | 'offset' | 'limit'> & { metadata?: Record<string, unknown> | string };
/** Listing devices (an org's, a channel's): as channels, and sortable by `last_seen` too. */
export type DeviceListQuery = Omit<ListQuery, 'sort'> & Partial<Pick<z.output<typeof DeviceListQueryS>, 'sort'>>;
/** Listing apps/API keys: paging, a sort and a name substring (case-insensitive; `%` and `_` match themselves). */
export type NameQuery = PageQuery & SortQuery & { name?: string };
/** Listing members: paging plus an email substring. */
export type MemberQuery = PageQuery & { email?: string };

export type User = z.infer<typeof UserS>;
export type Me = User & { orgs: { id: string; name: string; role: string }[] };
export type UserCreate = z.input<typeof Credentials>;
export type Tokens = z.infer<typeof TokensS>;

export type Role = z.infer<typeof RoleSchema>;
export type Org = z.infer<typeof OrgS>;
export type Member = z.infer<typeof MemberS>;
export type MemberInvite = z.input<typeof MemberInviteS>;

export type Device = z.infer<typeof DeviceS>;
export type DeviceWithKey = z.infer<typeof DeviceWithKeyS>;
export type DeviceCreate = z.input<typeof DeviceCreateS>;
export type DeviceUpdate = z.input<typeof DeviceUpdateS>;
export type DeviceKey = z.infer<typeof KeyRotated>;

export type Channel = z.infer<typeof ChannelS>;
export type ChannelCreate = z.input<typeof ChannelCreateS>;
export type ChannelUpdate = z.input<typeof ChannelUpdateS>;
export type ChannelLimits = z.infer<typeof ChannelLimitsS>;
export type ChannelLimitsPatch = z.input<typeof ChannelLimitsPatchS>;

export type ConnectionType = z.infer<typeof ConnectionTypeS>;
export type Connection = z.infer<typeof ConnectionS>;
export type Connect = z.input<typeof ConnectRequest>;
export type Disconnect = z.input<typeof DisconnectRequest>;
export type ConnectedDevice = z.infer<typeof ConnectedDeviceS>;
export type ConnectedChannel = z.infer<typeof ConnectedChannelS>;

export type App = z.infer<typeof AppS>;
export type AppWithSecret = z.infer<typeof AppWithSecretS>;
/** A rotated app: `revoked_keys` with `revokeIssued`. */
export type RotatedApp = z.infer<typeof RotatedAppS>;
export type SecretRotation = z.input<typeof SecretRotationS>;
export type AppCreate = z.input<typeof AppCreateS>;
export type AppUpdate = z.input<typeof AppUpdateS>;
export type AppToken = z.infer<typeof TokenResponse>;

export type ApiKey = z.infer<typeof ApiKeyS>;
export type ApiKeyWithSecret = z.infer<typeof ApiKeyWithSecretS>;
export type ApiKeyCreate = z.input<typeof ApiKeyCreateS>;

export type Statement = z.infer<typeof StatementSchema>;
export type Policy = z.infer<typeof PolicyS>;
export type PolicyCreate = z.input<typeof PolicyCreateS>;
export type PolicyUpdate = z.input<typeof PolicyUpdateS>;
export type PrincipalType = z.infer<typeof PrincipalTypeS>;
export type AttachmentCreate = z.input<typeof AttachmentS>;
export type Attachment = z.infer<typeof AttachmentOut>;

/** A message as the API shows it in JSON: text payloads inline, others base64 (`encoding: "base64"`). */
/** `retained`: a retained replay (WebSocket); `retain`: stored, and published with retain (query API). */
export type Message = EnvelopeJson & { retained?: boolean; retain?: boolean; size?: number; payloadUrl?: string };

type QueryOut = z.output<typeof QuerySchema>;
/** Filters of the query API (docs/query.md); times as ms, ISO-8601 or Date; interval as `10s`, `1h` or ms. */
export type MessageQuery = Partial<Omit<QueryOut, 'from' | 'to' | 'interval' | 'cursor'>> & {
  from?: number | string | Date;
  to?: number | string | Date;
  interval?: string | number;
  /** The `next` of an earlier page (same format and order): the page after it. Not with `offset`. */
  cursor?: string;
};
/** A SenML record as the query API resolves it (`format=senml`): the resolved record (shared/senml) and where it came from. */
export type SenmlRecord = ResolvedSenmlRecord & { channel: string; seq: number; subtopic: string; publisher: string };
/** One aggregation bucket: start time, name, unit and value; `count` values in it. */
export interface Bucket {
  time: number;
  name?: string;
  /** SenML buckets are per name and unit; absent for records without a unit and for message counts. */
  unit?: string;
  value: number;
  count: number;
}
/**
 * One page of a query. `total` counts every match (left out when asked with `total: false`); `next`
 * is the cursor of the page after this one, null on the last (listings only, not aggregations).
 */
export type QueryPage<T> = { total?: number; offset: number; limit: number; next?: string | null; items: T[]; aggregation?: QueryOut['aggregation']; interval?: number };

export interface Published {
  seq: number;
  created: number;
}
export interface Gap {
  from: number;
  to: number;
}
/** The channel's confirmation of a (re)subscription: its last seq then, and the `since` it resumes after, if any. */
export interface Subscribed {
  seq: number;
  since?: number;
}
