-- An app's access tokens carry the epoch they were issued in (`ep`, workers/auth/tokens.ts); rotating
-- the client secret with revokeIssued moves it on, and a token from an older epoch is refused
-- (workers/iam/access.ts) — its already-issued tokens end at once, as a deleted app's do.
ALTER TABLE apps ADD COLUMN token_epoch INTEGER NOT NULL DEFAULT 0;
