import type { IPubrelPacket } from 'mqtt-packet';
import { RC } from '../codes';
import type { Connection } from '../connection';

/**
 * Inbound QoS 2, step 3: PUBREL → PUBCOMP [MQTT-4.3.3-11]; from now on the packet id is new
 * again [MQTT-4.3.3-12]. An unknown id still gets a PUBCOMP (v5: 0x92 Packet Identifier not found).
 */
export function handlePubrel(conn: Connection, packet: IPubrelPacket): void {
  const messageId = packet.messageId ?? 0;
  const known = conn.qos2In.delete(messageId);
  if (known) conn.markDirty();
  conn.send(conn.version === 5 ? { cmd: 'pubcomp', messageId, reasonCode: known ? RC.Success : RC.PacketIdentifierNotFound } : { cmd: 'pubcomp', messageId });
}
