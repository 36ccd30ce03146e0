import type { IPubackPacket, IPubcompPacket, IPubrecPacket, IPubrelPacket } from 'mqtt-packet';
import type { Client } from '../client';
import { RC } from '../codes';

/** Outbound QoS 1 done [MQTT-4.3.2]. */
export function handlePuback(client: Client, packet: IPubackPacket): void {
  client.acknowledged(packet.messageId!);
}

/** Outbound QoS 2, step 2: answer PUBREL [MQTT-4.3.3-1]. */
export function handlePubrec(client: Client, packet: IPubrecPacket): void {
  const id = packet.messageId!;
  // v5: a PUBREC with an error code ends the exchange [MQTT-4.3.3].
  if ((packet.reasonCode ?? 0) >= 0x80) return client.acknowledged(id);
  const known = client.outboundReleased(id);
  client.send(client.version === 5 ? { cmd: 'pubrel', messageId: id, reasonCode: known ? RC.Success : RC.PacketIdentifierNotFound } : { cmd: 'pubrel', messageId: id });
}

/** Outbound QoS 2 done. */
export function handlePubcomp(client: Client, packet: IPubcompPacket): void {
  client.acknowledged(packet.messageId!);
}

/** Inbound QoS 2, step 3: the id may be reused after PUBCOMP [MQTT-4.3.3-2]. */
export function handlePubrel(client: Client, packet: IPubrelPacket): void {
  const id = packet.messageId!;
  const known = client.qos2In.delete(id);
  client.send(client.version === 5 ? { cmd: 'pubcomp', messageId: id, reasonCode: known ? RC.Success : RC.PacketIdentifierNotFound } : { cmd: 'pubcomp', messageId: id });
}
