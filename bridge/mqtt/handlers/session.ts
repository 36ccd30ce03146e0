import type { IDisconnectPacket } from 'mqtt-packet';
import type { Client } from '../client';

/** [MQTT-3.12.4-1] */
export function handlePingreq(client: Client): void {
  client.send({ cmd: 'pingresp' });
}

/**
 * A DISCONNECT ends the connection without the will [MQTT-3.14.4-3] — except v5's reason 0x04
 * "Disconnect with Will Message" [MQTT-3.14.2].
 */
export function handleDisconnect(client: Client, packet: IDisconnectPacket): void {
  const withWill = client.version === 5 && packet.reasonCode === 0x04;
  client.end(!withWill);
}
