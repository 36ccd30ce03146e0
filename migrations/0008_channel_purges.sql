-- Channels deleted whose stored data is not all gone yet (objects/purger/). Deleting a channel or
-- an org writes a row per channel here in the same D1 batch as the delete itself, so the promise
-- "its messages go" is on disk before the API answers; the purger then retires each channel's
-- actor, deletes its message_rows / senml_rows and its R2 blobs, in that order, and deletes the
-- row last. `stage` records the steps done, so a purge cut short (an eviction, a failure, the
-- time limit) resumes where it stopped; a step that fails is tried again at `due_at`, later after
-- each failure (`attempts`, `error`: the last failure).

CREATE TABLE channel_purges (
  channel_id TEXT    PRIMARY KEY,
  org_id     TEXT    NOT NULL,
  stage      INTEGER NOT NULL DEFAULT 0,   -- 0: retire the actor, 1: delete the rows, 2: delete the blobs
  attempts   INTEGER NOT NULL DEFAULT 0,   -- failures in a row
  due_at     INTEGER NOT NULL,             -- ms since epoch: not tried before this
  error      TEXT,                         -- the last failure
  created_at INTEGER NOT NULL
);

CREATE INDEX channel_purges_due ON channel_purges (due_at);
