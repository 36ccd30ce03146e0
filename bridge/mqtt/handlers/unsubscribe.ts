import type { IUnsubscribePacket } from 'mqtt-packet';
import { RC } from '../codes';
import type { Connection } from '../connection';

/**
 * UNSUBSCRIBE: filters are compared character by character with existing subscriptions
 * [MQTT-3.10.4-1]; an UNSUBACK is sent even when nothing matched [MQTT-3.10.4-5 (3.1.1)], v5 with a
 * code per filter: 0x00 or 0x11 No subscription existed [MQTT-3.11.3-1].
 */
export async function handleUnsubscribe(conn: Connection, packet: IUnsubscribePacket): Promise<void> {
  const codes: number[] = [];
  for (const topic of packet.unsubscriptions) {
    const sub = conn.subs.get(topic);
    if (sub) {
      sub.close();
      conn.subs.delete(topic);
    }
    codes.push(sub ? RC.Success : RC.NoSubscriptionExisted);
  }
  if (codes.includes(RC.Success)) await conn.saveSession();
  const messageId = packet.messageId ?? 0;
  conn.send(conn.version === 5 ? { cmd: 'unsuback', messageId, granted: codes } : { cmd: 'unsuback', messageId, granted: [] });
}
