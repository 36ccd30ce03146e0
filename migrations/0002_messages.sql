-- Message storage, written only by the channel actors' outbox drain (objects/channel/drain.ts) and
-- read by the message-query API. Rows are keyed by (channel_id, seq): the drain retries with
-- INSERT OR IGNORE, so a row is stored exactly once however often a batch is retried.
-- No foreign key to channels: a drain must never fail (and retry forever) because a channel was
-- deleted meanwhile; deleting a channel's messages is the channels feature's job.

CREATE TABLE messages (
  channel_id   TEXT    NOT NULL,
  seq          INTEGER NOT NULL,            -- per-channel order, assigned by the actor
  subtopic     TEXT    NOT NULL,            -- '' for the channel root
  publisher    TEXT    NOT NULL,            -- device / user / app / key id
  protocol     TEXT    NOT NULL CHECK (protocol IN ('http', 'ws', 'mqtt', 'coap')),
  content_type TEXT    NOT NULL,
  created      INTEGER NOT NULL,            -- ms since epoch, assigned by the actor
  size         INTEGER NOT NULL,            -- payload bytes
  payload      TEXT,                        -- UTF-8 text payloads up to 64 KiB, inline
  blob_key     TEXT,                        -- otherwise the R2 key: channels/{channel_id}/{seq, 16 digits}
  retained     INTEGER NOT NULL DEFAULT 0,  -- published with the retain flag
  PRIMARY KEY (channel_id, seq),
  CHECK ((payload IS NULL) <> (blob_key IS NULL))
);
-- Time-range reads ("last hour of this channel") and per-subtopic / per-publisher filters.
CREATE INDEX messages_channel_created ON messages(channel_id, created);
CREATE INDEX messages_channel_subtopic ON messages(channel_id, subtopic, seq);
CREATE INDEX messages_channel_publisher ON messages(channel_id, publisher, created);

-- One row per resolved SenML record (RFC 8428 §4.6) of application/senml+json and
-- application/senml+cbor messages: base values already applied, times absolute (seconds).
CREATE TABLE senml_records (
  channel_id   TEXT    NOT NULL,
  seq          INTEGER NOT NULL,            -- the message it came from
  idx          INTEGER NOT NULL,            -- 0-based position in the pack
  subtopic     TEXT    NOT NULL,
  publisher    TEXT    NOT NULL,
  created      INTEGER NOT NULL,            -- the message's created (ms)
  name         TEXT    NOT NULL,            -- bn + n
  time         REAL    NOT NULL,            -- bt + t, seconds since epoch
  unit         TEXT,
  value        REAL,
  string_value TEXT,
  bool_value   INTEGER,                     -- 0 / 1
  data_value   TEXT,                        -- base64url, as in SenML JSON
  sum          REAL,
  update_time  REAL,
  PRIMARY KEY (channel_id, seq, idx)
);
-- "temperature of this channel between t1 and t2", "everything in this channel since t".
CREATE INDEX senml_channel_name_time ON senml_records(channel_id, name, time);
CREATE INDEX senml_channel_time ON senml_records(channel_id, time);
CREATE INDEX senml_channel_publisher_time ON senml_records(channel_id, publisher, time);
