/**
 * Access epochs (migrations/0005): one row per org, moved to the next number of a sequence shared
 * by all orgs whenever the org's access data is written. The bridge polls `changesSince` and keeps
 * its cached message decisions for orgs that did not move (bridge/platform/internal-api.ts), so it
 * need not ask about every device every few seconds, and still sees a revocation within a poll.
 */

/** The org's access data was just written: its row takes the next number of the shared sequence. */
export async function bumpAccessEpoch(db: D1Database, orgId: string): Promise<void> {
  await db
    .prepare('INSERT INTO access_epochs (org_id, epoch) VALUES (?1, (SELECT COALESCE(MAX(epoch), 0) + 1 FROM access_epochs)) ON CONFLICT (org_id) DO UPDATE SET epoch = excluded.epoch')
    .bind(orgId)
    .run();
}

/** More orgs than this moved since: the answer is "everything" (the bridge forgets all it cached). */
const MAX_LISTED = 1000;

export interface AccessChanges {
  /** The newest number: the bridge's `since` next time. */
  epoch: number;
  /** Orgs whose access changed after `since`. */
  orgs: string[];
  /** Too many to list, or the sequence went backwards (the database was recreated): forget everything. */
  all: boolean;
}

export async function changesSince(db: D1Database, since: number): Promise<AccessChanges> {
  const [top, moved] = await db.batch<{ epoch: number | null } | { org_id: string }>([
    db.prepare('SELECT MAX(epoch) AS epoch FROM access_epochs'),
    db.prepare('SELECT org_id FROM access_epochs WHERE epoch > ? ORDER BY epoch LIMIT ?').bind(since, MAX_LISTED + 1),
  ]);
  const epoch = (top!.results[0] as { epoch: number | null } | undefined)?.epoch ?? 0;
  const orgs = (moved!.results as { org_id: string }[]).map((r) => r.org_id);
  const all = epoch < since || orgs.length > MAX_LISTED;
  return { epoch, orgs: all ? [] : orgs, all };
}
