-- Who may do what changed, per org: every write to an org's access data (devices, keys,
-- connections, channels, members, policies, apps: any successful write under /orgs/{org} but
-- those that change no decision, such as creations and renames: NO_ACCESS_CHANGE in
-- workers/app.ts) moves its row to the next number of one sequence shared by all orgs
-- (workers/iam/epochs.ts). A bridge asks every
-- second or so which orgs moved since the number it saw last (POST /internal/access/changes) and
-- keeps its cached message decisions for the others: a device publishing all day is not asked
-- about every few seconds, yet a rotated key or a removed connection is noticed within about a
-- second.

CREATE TABLE access_epochs (
  org_id TEXT    PRIMARY KEY,
  epoch  INTEGER NOT NULL
);

CREATE INDEX access_epochs_epoch ON access_epochs (epoch);
