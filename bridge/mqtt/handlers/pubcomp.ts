import type { IPubcompPacket } from 'mqtt-packet';
import type { Connection } from '../connection';

/** Outbound QoS 2 completed; the packet id is free again [MQTT-4.3.3-5]. */
export function handlePubcomp(conn: Connection, packet: IPubcompPacket): void {
  if (!conn.outbox.pubcomp(packet.messageId ?? 0)) conn.log(`PUBCOMP for unknown packet id ${packet.messageId}`);
}
