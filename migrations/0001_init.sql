-- Edgeflux provisioning schema. Every entity except users belongs to exactly one org;
-- every lookup below is scoped by org_id so nothing of one org is visible to another.

CREATE TABLE users (
  id            TEXT PRIMARY KEY,
  email         TEXT NOT NULL UNIQUE COLLATE NOCASE,
  password_hash TEXT NOT NULL,             -- pbkdf2-sha256$iterations$salt$hash, never the password
  created_at    INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL
);

-- Opaque refresh tokens, stored as SHA-256 hashes; rotated on every use.
CREATE TABLE refresh_tokens (
  token_hash  TEXT PRIMARY KEY,
  user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  expires_at  INTEGER NOT NULL,
  created_at  INTEGER NOT NULL
);
CREATE INDEX refresh_tokens_user ON refresh_tokens(user_id);

CREATE TABLE orgs (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE members (
  org_id     TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
  user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
  created_at INTEGER NOT NULL,
  PRIMARY KEY (org_id, user_id)
);
CREATE INDEX members_user ON members(user_id);

CREATE TABLE devices (
  id          TEXT PRIMARY KEY,
  org_id      TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
  name        TEXT NOT NULL,
  metadata    TEXT NOT NULL DEFAULT '{}',  -- JSON object
  key_hash    TEXT NOT NULL UNIQUE,        -- SHA-256 of the device key: lookup by key is one indexed query
  online      INTEGER NOT NULL DEFAULT 0,
  last_seen   INTEGER,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);
CREATE INDEX devices_org ON devices(org_id, created_at, id);

CREATE TABLE channels (
  id          TEXT PRIMARY KEY,
  org_id      TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
  name        TEXT NOT NULL,
  metadata    TEXT NOT NULL DEFAULT '{}',
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);
CREATE INDEX channels_org ON channels(org_id, created_at, id);

CREATE TABLE connections (
  org_id        TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
  channel_id    TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
  device_id     TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  can_publish   INTEGER NOT NULL,
  can_subscribe INTEGER NOT NULL,
  created_at    INTEGER NOT NULL,
  PRIMARY KEY (channel_id, device_id)
);
CREATE INDEX connections_device ON connections(device_id, channel_id);

CREATE TABLE apps (
  id                 TEXT PRIMARY KEY,
  org_id             TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
  name               TEXT NOT NULL,
  client_id          TEXT NOT NULL UNIQUE,
  client_secret_hash TEXT NOT NULL,
  scopes             TEXT NOT NULL,         -- JSON array of scope strings
  created_by         TEXT NOT NULL,
  created_at         INTEGER NOT NULL,
  updated_at         INTEGER NOT NULL
);
CREATE INDEX apps_org ON apps(org_id, created_at, id);

-- API keys are JWTs (jti = id); this row is what makes them listable and revocable.
CREATE TABLE api_keys (
  id          TEXT PRIMARY KEY,
  org_id      TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
  name        TEXT NOT NULL,
  owner_type  TEXT NOT NULL CHECK (owner_type IN ('user', 'app')),
  owner_id    TEXT NOT NULL,
  scopes      TEXT NOT NULL,                -- JSON array of scope strings
  expires_at  INTEGER,                      -- ms since epoch, NULL = never
  revoked_at  INTEGER,
  created_at  INTEGER NOT NULL
);
CREATE INDEX api_keys_org ON api_keys(org_id, created_at, id);

CREATE TABLE policies (
  id          TEXT PRIMARY KEY,
  org_id      TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
  name        TEXT NOT NULL,
  statements  TEXT NOT NULL,                -- JSON array of {effect, actions, resources}
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);
CREATE INDEX policies_org ON policies(org_id, created_at, id);

CREATE TABLE policy_attachments (
  policy_id       TEXT NOT NULL REFERENCES policies(id) ON DELETE CASCADE,
  org_id          TEXT NOT NULL,
  principal_type  TEXT NOT NULL CHECK (principal_type IN ('member', 'device', 'app', 'key')),
  principal_id    TEXT NOT NULL,
  created_at      INTEGER NOT NULL,
  PRIMARY KEY (policy_id, principal_type, principal_id)
);
CREATE INDEX policy_attachments_principal ON policy_attachments(org_id, principal_type, principal_id);
