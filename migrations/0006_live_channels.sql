-- Channels with live WebSocket subscribers, one row per channel kept by its channel actor
-- (objects/channel/live.ts): written when its first subscriber arrives, deleted when its last one
-- goes. A write that changes an org's access (the same writes that move access_epochs) asks these
-- channels' actors to ask again about their subscribers at once, so a revoked browser or SDK
-- subscriber on a quiet channel is closed within a round trip, not at its next delivery.

CREATE TABLE live_channels (
  channel_id TEXT PRIMARY KEY,
  org_id     TEXT NOT NULL
);

CREATE INDEX live_channels_org ON live_channels (org_id);
