import type { Principal } from '../auth/principal';
import type { ConnectionGrant, Role, Statement } from './pdp';

/**
 * What the PDP reads from D1 about any number of principals, in ONE round trip (one `db.batch` of
 * at most seven statements, each over a JSON list of ids with `json_each`), however many principals,
 * orgs and channels are asked about. A bridge re-checking a thousand sessions after an access change
 * then costs the worker one batch per hundred sessions, not four or five sequential reads per
 * session (docs/auth.md, "Live connections are re-checked"). access.ts assembles the PDP's inputs
 * from these rows; nothing here decides anything.
 */

/** What to load for one principal. */
export interface AccessNeed {
  principal: Principal;
  /** Whether its credential is still good (api_keys / devices / apps rows). */
  credential?: boolean;
  /** Orgs to load its access context in (a route's org). */
  orgs?: readonly string[];
  /** Channels asked about: each one's org, and the access context in it. */
  channels?: readonly string[];
}

type RefType = 'member' | 'device' | 'app' | 'key';

export interface AccessRows {
  keys: Map<string, { revokedAt: number | null; expiresAt: number | null }>;
  /** Device id → its key's hash (absent: no such device). */
  devices: Map<string, string>;
  channelOrgs: Map<string, string>;
  connections: Map<string, ConnectionGrant[]>;
  /** `org\0user` → role. */
  roles: Map<string, Role>;
  /** `tokenEpoch`: app tokens issued in an earlier epoch were revoked (migrations/0011). */
  apps: Map<string, { orgId: string; scopes: string[]; tokenEpoch: number }>;
  /** `org\0type\0id` → the statements of the policies attached there. */
  policies: Map<string, Statement[]>;
}

export const roleKey = (org: string, user: string): string => `${org}\u0000${user}`;
export const refKey = (org: string, type: RefType, id: string): string => `${org}\u0000${type}\u0000${id}`;

/** The principal's own policy subjects, and its key's owner's (loadAccess attaches both to a key). */
export function subjectsOf(p: Principal): { type: RefType; id: string }[] {
  switch (p.kind) {
    case 'user':
      return [{ type: 'member', id: p.id }];
    case 'key':
      return [{ type: 'key', id: p.id }, { type: p.owner.kind === 'user' ? 'member' : 'app', id: p.owner.id }];
    case 'app':
      return [{ type: 'app', id: p.id }];
    case 'device':
      return [{ type: 'device', id: p.id }];
  }
}

const ids = (s: Set<string>): string => JSON.stringify([...s]);

// Policy subjects wanted: [org, type, id] as given, and [channel, type, id] in the channel's org (a
// user's org is the asked channel's: not known before this read). Members and attachments both join it.
const WANTED = `WITH wanted(org_id, type, id) AS (
  SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each(?1)
  UNION
  SELECT c.org_id, json_extract(j.value, '$[1]'), json_extract(j.value, '$[2]') FROM json_each(?2) j JOIN channels c ON c.id = json_extract(j.value, '$[0]')
)`;

export async function loadAccessRows(db: D1Database, needs: readonly AccessNeed[]): Promise<AccessRows> {
  const keyIds = new Set<string>();
  const deviceIds = new Set<string>();
  const channelIds = new Set<string>();
  const connectionsOf = new Set<string>();
  const appIds = new Set<string>();
  const byOrg: [string, RefType, string][] = [];
  const byChannel: [string, RefType, string][] = [];
  for (const { principal: p, credential, orgs = [], channels = [] } of needs) {
    if (credential && p.kind === 'key') keyIds.add(p.id);
    if (credential && p.kind === 'device' && p.keyStamp !== undefined) deviceIds.add(p.id);
    // An app token's credential is its app's row: gone (deleted) or past its epoch (revoked).
    if (credential && p.kind === 'app') appIds.add(p.id);
    for (const ch of channels) channelIds.add(ch);
    if (orgs.length === 0 && channels.length === 0) continue;
    // A principal bound to an org has an access context there only; a user, in any org it is a member of.
    const where = p.kind === 'user' ? orgs : [p.orgId];
    for (const s of subjectsOf(p)) {
      for (const org of where) byOrg.push([org, s.type, s.id]);
      if (p.kind === 'user') for (const ch of channels) byChannel.push([ch, s.type, s.id]);
    }
    if (p.kind === 'device') connectionsOf.add(p.id);
    if (p.kind === 'app') appIds.add(p.id);
    if (p.kind === 'key' && p.owner.kind === 'app') appIds.add(p.owner.id);
  }

  const rows: AccessRows = { keys: new Map(), devices: new Map(), channelOrgs: new Map(), connections: new Map(), roles: new Map(), apps: new Map(), policies: new Map() };
  const reads: { stmt: D1PreparedStatement; take: (results: unknown[]) => void }[] = [];
  const read = <R>(sql: string, binds: unknown[], take: (results: R[]) => void) => reads.push({ stmt: db.prepare(sql).bind(...binds), take: take as (results: unknown[]) => void });
  if (keyIds.size) {
    read('SELECT id, revoked_at, expires_at FROM api_keys WHERE id IN (SELECT value FROM json_each(?))', [ids(keyIds)], (rs: { id: string; revoked_at: number | null; expires_at: number | null }[]) => {
      for (const r of rs) rows.keys.set(r.id, { revokedAt: r.revoked_at, expiresAt: r.expires_at });
    });
  }
  if (deviceIds.size) {
    read('SELECT id, key_hash FROM devices WHERE id IN (SELECT value FROM json_each(?))', [ids(deviceIds)], (rs: { id: string; key_hash: string }[]) => {
      for (const r of rs) rows.devices.set(r.id, r.key_hash);
    });
  }
  if (channelIds.size) {
    read('SELECT id, org_id FROM channels WHERE id IN (SELECT value FROM json_each(?))', [ids(channelIds)], (rs: { id: string; org_id: string }[]) => {
      for (const r of rs) rows.channelOrgs.set(r.id, r.org_id);
    });
  }
  if (connectionsOf.size) {
    read(
      'SELECT device_id, channel_id, can_publish, can_subscribe FROM connections WHERE device_id IN (SELECT value FROM json_each(?))',
      [ids(connectionsOf)],
      (rs: { device_id: string; channel_id: string; can_publish: number; can_subscribe: number }[]) => {
        for (const r of rs) {
          let list = rows.connections.get(r.device_id);
          if (!list) rows.connections.set(r.device_id, (list = []));
          list.push({ channelId: r.channel_id, canPublish: !!r.can_publish, canSubscribe: !!r.can_subscribe });
        }
      },
    );
  }
  if (appIds.size) {
    read('SELECT id, org_id, scopes, token_epoch FROM apps WHERE id IN (SELECT value FROM json_each(?))', [ids(appIds)], (rs: { id: string; org_id: string; scopes: string; token_epoch: number }[]) => {
      for (const r of rs) rows.apps.set(r.id, { orgId: r.org_id, scopes: JSON.parse(r.scopes) as string[], tokenEpoch: r.token_epoch });
    });
  }
  if (byOrg.length || byChannel.length) {
    const wanted = [JSON.stringify(byOrg), JSON.stringify(byChannel)];
    read(`${WANTED} SELECT m.org_id, m.user_id, m.role FROM wanted w JOIN members m ON m.org_id = w.org_id AND m.user_id = w.id WHERE w.type = 'member'`, wanted, (rs: { org_id: string; user_id: string; role: Role }[]) => {
      for (const r of rs) rows.roles.set(roleKey(r.org_id, r.user_id), r.role);
    });
    read(
      `${WANTED} SELECT w.org_id, w.type, w.id, p.statements FROM wanted w JOIN policy_attachments a ON a.org_id = w.org_id AND a.principal_type = w.type AND a.principal_id = w.id JOIN policies p ON p.id = a.policy_id`,
      wanted,
      (rs: { org_id: string; type: RefType; id: string; statements: string }[]) => {
        for (const r of rs) {
          const k = refKey(r.org_id, r.type, r.id);
          let list = rows.policies.get(k);
          if (!list) rows.policies.set(k, (list = []));
          list.push(...(JSON.parse(r.statements) as Statement[]));
        }
      },
    );
  }
  if (reads.length === 0) return rows;
  const results = await db.batch(reads.map((r) => r.stmt));
  reads.forEach((r, i) => r.take(results[i]!.results));
  return rows;
}
