-- Device and channel lists sorted by name (?sort=name, case-insensitive as the name filter) and
-- devices by last_seen (?sort=last_seen), read in index order rather than sorting an org's rows
-- for every page. The rowid at the end of each index is the lists' tie-break (workers/lib/entities.ts
-- orderBy). Apps and keys are few per org and sort without an index.
CREATE INDEX devices_org_name ON devices (org_id, name COLLATE NOCASE);
CREATE INDEX devices_org_last_seen ON devices (org_id, last_seen);
CREATE INDEX channels_org_name ON channels (org_id, name COLLATE NOCASE);
