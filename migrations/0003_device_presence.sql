-- Device presence per bridge: a device is online while any bridge says it has a connection of it.
-- One row per (device, bridge); `at` (the bridge's clock, ms) orders updates that arrive out of
-- order, so a late "offline" from a bridge the device left cannot hide its connection elsewhere.
-- devices.online / devices.last_seen stay the summary the devices API reads.

CREATE TABLE device_presence (
  device_id TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
  bridge    TEXT    NOT NULL,             -- the bridge's id (EDGEFLUX_BRIDGE_ID, default host:port)
  online    INTEGER NOT NULL,
  at        INTEGER NOT NULL,
  PRIMARY KEY (device_id, bridge)
);

CREATE INDEX device_presence_bridge ON device_presence (bridge);
