-- Refresh tokens rotate within a family: one per login (workers/users/service.ts). A used token
-- is kept, marked `used_at`, until it would have expired, so a second use of it — a copy raced its
-- owner, or was stolen and used after the owner refreshed — is told apart from a token never
-- issued, and ends every token of its family: the thief's and the owner's session alike, as OAuth
-- 2.0 Security BCP (RFC 9700 §4.14.2) asks. Rows from before this migration have no family: each
-- starts its own at its next use. Forward-only, as every migration here.

ALTER TABLE refresh_tokens ADD COLUMN family TEXT;
ALTER TABLE refresh_tokens ADD COLUMN used_at INTEGER;

CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
