-- Stored messages keyed by integers instead of ids (docs/performance.md, seventh round).
--
-- 0002 keyed every message and SenML record by the channel's and the publisher's id, 36-character
-- UUIDs, and each id is repeated in every index: the channel id in eight B-trees, the publisher
-- id in four, about half of the ~0.9 KB a one-record SenML message took. Here each channel id
-- and each publisher id is stored once, in channel_keys / publisher_keys, and the rows and their
-- indexes carry its integer key (AUTOINCREMENT: a key is never handed out twice).
--
-- `messages` and `senml_records` become read-only views with the old columns, for anyone who
-- reads the database by hand; the query API and the store writer use the tables.
--
-- Deploying: apply this migration, then deploy the worker at once. In between, the old worker's
-- drains fail on the views and back off (nothing is lost; they write once the new worker runs),
-- and a channel deleted in that window keeps its stored rows. The copy below is one statement per
-- table: on a large production database, check it against D1's limits first.

CREATE TABLE channel_keys (
  key        INTEGER PRIMARY KEY AUTOINCREMENT,
  channel_id TEXT    NOT NULL UNIQUE
);

CREATE TABLE publisher_keys (
  key       INTEGER PRIMARY KEY AUTOINCREMENT,
  publisher TEXT    NOT NULL UNIQUE           -- device / user / app / key id
);

CREATE TABLE message_rows (
  ch           INTEGER NOT NULL,            -- channel_keys.key
  seq          INTEGER NOT NULL,            -- per-channel order, assigned by the actor
  subtopic     TEXT    NOT NULL,            -- '' for the channel root
  pub          INTEGER NOT NULL,            -- publisher_keys.key
  protocol     TEXT    NOT NULL CHECK (protocol IN ('http', 'ws', 'mqtt', 'coap')),
  content_type TEXT    NOT NULL,
  created      INTEGER NOT NULL,            -- ms since epoch, assigned by the actor
  size         INTEGER NOT NULL,            -- payload bytes
  payload      TEXT,                        -- UTF-8 text payloads up to 64 KiB, inline
  blob_key     TEXT,                        -- otherwise the R2 key: channels/{channel_id}/{seq, 16 digits}
  retained     INTEGER NOT NULL DEFAULT 0,  -- published with the retain flag
  PRIMARY KEY (ch, seq),
  CHECK ((payload IS NULL) <> (blob_key IS NULL))
);

CREATE TABLE senml_rows (
  ch           INTEGER NOT NULL,            -- channel_keys.key
  seq          INTEGER NOT NULL,            -- the message it came from
  idx          INTEGER NOT NULL,            -- 0-based position in the pack
  subtopic     TEXT    NOT NULL,
  pub          INTEGER NOT NULL,            -- publisher_keys.key
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
  PRIMARY KEY (ch, seq, idx)
);

-- Whatever 0002's tables hold moves over.
INSERT INTO channel_keys (channel_id) SELECT channel_id FROM messages UNION SELECT channel_id FROM senml_records ORDER BY 1;
INSERT INTO publisher_keys (publisher) SELECT publisher FROM messages UNION SELECT publisher FROM senml_records ORDER BY 1;
INSERT INTO message_rows (ch, seq, subtopic, pub, protocol, content_type, created, size, payload, blob_key, retained)
  SELECT c.key, m.seq, m.subtopic, p.key, m.protocol, m.content_type, m.created, m.size, m.payload, m.blob_key, m.retained
  FROM messages m JOIN channel_keys c ON c.channel_id = m.channel_id JOIN publisher_keys p ON p.publisher = m.publisher;
INSERT INTO senml_rows (ch, seq, idx, subtopic, pub, created, name, time, unit, value, string_value, bool_value, data_value, sum, update_time)
  SELECT c.key, r.seq, r.idx, r.subtopic, p.key, r.created, r.name, r.time, r.unit, r.value, r.string_value, r.bool_value, r.data_value, r.sum, r.update_time
  FROM senml_records r JOIN channel_keys c ON c.channel_id = r.channel_id JOIN publisher_keys p ON p.publisher = r.publisher;

DROP TABLE messages;
DROP TABLE senml_records;

-- The same indexes as 0002 (and the same names), on the keys.
CREATE INDEX messages_channel_created ON message_rows(ch, created);
CREATE INDEX messages_channel_subtopic ON message_rows(ch, subtopic, seq);
CREATE INDEX messages_channel_publisher ON message_rows(ch, pub, created);
CREATE INDEX senml_channel_name_time ON senml_rows(ch, name, time);
CREATE INDEX senml_channel_time ON senml_rows(ch, time);
CREATE INDEX senml_channel_publisher_time ON senml_rows(ch, pub, time);

CREATE VIEW messages AS
  SELECT c.channel_id, m.seq, m.subtopic, p.publisher, m.protocol, m.content_type, m.created, m.size, m.payload, m.blob_key, m.retained
  FROM message_rows m JOIN channel_keys c ON c.key = m.ch JOIN publisher_keys p ON p.key = m.pub;

CREATE VIEW senml_records AS
  SELECT c.channel_id, r.seq, r.idx, r.subtopic, p.publisher, r.created, r.name, r.time, r.unit, r.value, r.string_value, r.bool_value, r.data_value, r.sum, r.update_time
  FROM senml_rows r JOIN channel_keys c ON c.key = r.ch JOIN publisher_keys p ON p.key = r.pub;
