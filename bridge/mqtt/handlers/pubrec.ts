import type { IPubrecPacket } from 'mqtt-packet';
import { RC } from '../codes';
import type { Connection } from '../connection';

/**
 * Outbound QoS 2, step 2: PUBREC → PUBREL [MQTT-4.3.3-4]. A v5 PUBREC with a failure code ends
 * the exchange; an unknown id still gets a PUBREL (v5: 0x92 Packet Identifier not found).
 */
export function handlePubrec(conn: Connection, packet: IPubrecPacket): void {
  const messageId = packet.messageId ?? 0;
  const r = conn.outbox.pubrec(messageId, packet.reasonCode ?? 0);
  if (r === 'done') return;
  const reasonCode = r === 'release' ? RC.Success : RC.PacketIdentifierNotFound;
  conn.send(conn.version === 5 ? { cmd: 'pubrel', messageId, reasonCode } : { cmd: 'pubrel', messageId });
}
