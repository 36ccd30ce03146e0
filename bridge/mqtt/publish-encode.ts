import type { IPublishPacket } from 'mqtt-packet';

/** Remaining Length is a Variable Byte Integer of at most four bytes [MQTT-1.5.5 (5.0), 2.2.3 (3.1.1)]. */
const MAX_REMAINING = 268_435_455;

/**
 * An outgoing PUBLISH without properties, written straight into one buffer: the bytes
 * mqtt-packet's `generate` would give (fan-out sends one per delivery, and `generate` builds
 * several buffers and logs through `debug` for each). Null when the packet is not this simple
 * (MQTT 5 properties, a topic or size out of range): the caller uses mqtt-packet then.
 *
 *   fixed header  0x30 | DUP << 3 | QoS << 1 | RETAIN, Remaining Length   §3.3.1
 *   topic name    UTF-8 string with a two-byte length                       §3.3.2.1
 *   packet id     two bytes, QoS 1 and 2 only                               §3.3.2.2
 *   properties    MQTT 5 only: their length, 0                              §3.3.2.3
 *   payload       the rest                                                  §3.3.3
 */
export function encodeSimplePublish(packet: IPublishPacket, version: 4 | 5): Buffer | null {
  if (version === 5 && packet.properties && Object.keys(packet.properties).length > 0) return null;
  const { qos, topic } = packet;
  const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
  const topicBytes = Buffer.byteLength(topic);
  if (topicBytes > 0xffff || (qos > 0 && packet.messageId === undefined)) return null;
  const remaining = 2 + topicBytes + (qos > 0 ? 2 : 0) + (version === 5 ? 1 : 0) + payload.byteLength;
  if (remaining > MAX_REMAINING) return null;
  const lengthBytes = remaining < 128 ? 1 : remaining < 16_384 ? 2 : remaining < 2_097_152 ? 3 : 4;
  const out = Buffer.allocUnsafe(1 + lengthBytes + remaining);
  out[0] = 0x30 | (packet.dup ? 0x08 : 0) | (qos << 1) | (packet.retain ? 1 : 0);
  let i = 1;
  for (let n = remaining; ; ) {
    const byte = n % 128;
    n = Math.floor(n / 128);
    out[i++] = n > 0 ? byte | 0x80 : byte;
    if (n === 0) break;
  }
  out.writeUInt16BE(topicBytes, i);
  i += 2;
  i += out.write(topic, i, 'utf8');
  if (qos > 0) i = out.writeUInt16BE(packet.messageId!, i);
  if (version === 5) out[i++] = 0;
  out.set(payload, i);
  return out;
}
