import type { IPublishPacket } from 'mqtt-packet';

/** Remaining Length is a Variable Byte Integer of at most four bytes [MQTT-1.5.5 (5.0), 2.2.3 (3.1.1)]. */
const MAX_REMAINING = 268_435_455;
/** Subscription Identifier's property identifier (MQTT 5 §2.2.2.2). */
const SUBSCRIPTION_IDENTIFIER = 0x0b;

const NONE: readonly number[] = Object.freeze([]);

const varIntLength = (n: number): number => (n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4);

function writeVarInt(out: Buffer, at: number, value: number): number {
  for (let n = value; ; ) {
    const byte = n % 128;
    n = Math.floor(n / 128);
    out[at++] = n > 0 ? byte | 0x80 : byte;
    if (n === 0) return at;
  }
}

/**
 * The Subscription Identifiers when they are a v5 PUBLISH's only property, [] when it has none,
 * null when it has others (mqtt-packet encodes those).
 */
function onlySubscriptionIds(props: IPublishPacket['properties']): readonly number[] | null {
  if (!props) return NONE;
  let ids: readonly number[] = NONE;
  // for…in, not Object.keys: this runs for every delivery, and allocates nothing.
  for (const name in props) {
    if (name !== 'subscriptionIdentifier') return null;
    const value = props.subscriptionIdentifier;
    if (typeof value === 'number') ids = [value];
    else if (Array.isArray(value)) ids = value;
    else return null;
  }
  for (const id of ids) if (!Number.isInteger(id) || id < 1 || id > MAX_REMAINING) return null;
  return ids;
}

/**
 * An outgoing PUBLISH without properties (or whose only v5 properties are Subscription
 * Identifiers), written straight into one buffer: the bytes mqtt-packet's `generate` would give
 * (fan-out sends one per delivery, and `generate` builds several buffers and logs through `debug`
 * for each). Null when the packet is not this simple (other MQTT 5 properties, a topic or size
 * out of range): the caller uses mqtt-packet then.
 *
 *   fixed header  0x30 | DUP << 3 | QoS << 1 | RETAIN, Remaining Length   §3.3.1
 *   topic name    UTF-8 string with a two-byte length                       §3.3.2.1
 *   packet id     two bytes, QoS 1 and 2 only                               §3.3.2.2
 *   properties    MQTT 5 only: their length, then 0x0B + identifier each    §3.3.2.3
 *   payload       the rest                                                  §3.3.3
 */
export function encodeSimplePublish(packet: IPublishPacket, version: 4 | 5): Buffer | null {
  const ids = version === 5 ? onlySubscriptionIds(packet.properties) : NONE;
  if (ids === null) return null;
  const { qos, topic } = packet;
  const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
  const topicBytes = Buffer.byteLength(topic);
  if (topicBytes > 0xffff || (qos > 0 && packet.messageId === undefined)) return null;
  let propertyBytes = 0;
  for (const id of ids) propertyBytes += 1 + varIntLength(id);
  const properties = version === 5 ? varIntLength(propertyBytes) + propertyBytes : 0;
  const remaining = 2 + topicBytes + (qos > 0 ? 2 : 0) + properties + payload.byteLength;
  if (remaining > MAX_REMAINING) return null;
  const out = Buffer.allocUnsafe(1 + varIntLength(remaining) + remaining);
  out[0] = 0x30 | (packet.dup ? 0x08 : 0) | (qos << 1) | (packet.retain ? 1 : 0);
  let i = writeVarInt(out, 1, remaining);
  out.writeUInt16BE(topicBytes, i);
  i += 2;
  i += out.write(topic, i, 'utf8');
  if (qos > 0) i = out.writeUInt16BE(packet.messageId!, i);
  if (version === 5) {
    i = writeVarInt(out, i, propertyBytes);
    for (const id of ids) {
      out[i++] = SUBSCRIPTION_IDENTIFIER;
      i = writeVarInt(out, i, id);
    }
  }
  out.set(payload, i);
  return out;
}
