import type { IPubackPacket } from 'mqtt-packet';
import type { Connection } from '../connection';

/** Outbound QoS 1 completed [MQTT-4.3.2-3]; the window opens for the next queued delivery. */
export function handlePuback(conn: Connection, packet: IPubackPacket): void {
  if (!conn.outbox.puback(packet.messageId ?? 0)) conn.log(`PUBACK for unknown packet id ${packet.messageId}`);
}
