import type { ISubscribePacket, ISubscription } from 'mqtt-packet';
import { minQos, RC, V4 } from '../codes';
import type { Connection } from '../connection';
import { activate, createSub } from '../subscriptions';
import { parseTopicFilter, TopicProblem, type TopicFilter } from '../topics';

/** v5 codes for SUBACK failures; 3.1.1 has only 0x80 [MQTT-3.9.3-2 (3.1.1)]. */
const failure = (conn: Connection, rc: number): number => (conn.version === 5 ? rc : V4.SubackFailure);

/** One topic filter: parse → quota → authorize → subscribe. Returns the granted QoS or a failure code. */
async function subscribeOne(conn: Connection, s: ISubscription, subscriptionId: number | undefined): Promise<number> {
  const v5 = conn.version === 5;
  let f: TopicFilter;
  try {
    f = parseTopicFilter(s.topic);
  } catch (e) {
    conn.log(`filter ${JSON.stringify(s.topic)} refused: ${e instanceof TopicProblem ? e.message : String(e)}`);
    return failure(conn, RC.TopicFilterInvalid);
  }
  // [MQTT-3.8.3-4] No Local on a shared subscription is a protocol error.
  if (f.share !== undefined && v5 && s.nl) {
    conn.disconnect(RC.ProtocolError, 'No Local on a shared subscription [MQTT-3.8.3-4]');
    return RC.ProtocolError;
  }
  const existing = conn.subs.get(s.topic);
  if (!existing && conn.subs.size >= conn.limits.maxSubscriptions) return failure(conn, RC.QuotaExceeded);
  // [MQTT-3.8.4-6 (3.1.1)] the server may grant a lower QoS than requested.
  const qos = minQos(s.qos, conn.limits.maxQos);
  const retainHandling = v5 ? ((s.rh ?? 0) as 0 | 1 | 2) : 0;
  const sub = createSub(conn, s.topic, f, { qos, noLocal: v5 && s.nl === true, retainAsPublished: v5 && s.rap === true, retainHandling, subscriptionId }, existing);
  // Retain Handling 0: always; 1: only for a new subscription; 2: never [MQTT-3.3.1-9..11 (5.0)].
  const sendRetained = retainHandling === 0 || (retainHandling === 1 && !existing);
  let rc: number;
  try {
    rc = await activate(conn, sub, { kind: 'subscribe', sendRetained, ...(existing ? { replacing: existing } : {}) });
  } catch (e) {
    conn.log(`subscribe ${s.topic} failed: ${e instanceof Error ? e.message : String(e)}`);
    return failure(conn, RC.UnspecifiedError);
  }
  if (rc >= 0x80) return failure(conn, rc);
  if (conn.phase === 'closed') {
    sub.close();
    return rc;
  }
  // [MQTT-3.8.4-3] an identical filter replaces the existing subscription without interrupting its flow.
  conn.subs.set(s.topic, sub);
  // Its identifier is the filter's from now on: what either subscription offered and is not sent yet carries it alone.
  sub.slot.subscriptionId = sub.subscriptionId;
  existing?.close(sub.channels);
  return rc;
}

/**
 * SUBSCRIBE: each filter on its own [MQTT-3.8.4-4 (3.1.1)], then one SUBACK with a code per filter
 * in order [MQTT-3.8.4-1, MQTT-3.9.3-1]. Deliveries (retained first) are held until the SUBACK is
 * written, and a persistent session is saved before it.
 */
export async function handleSubscribe(conn: Connection, packet: ISubscribePacket): Promise<void> {
  const messageId = packet.messageId ?? 0;
  // v5: stored with every subscription this packet creates or modifies; a SUBSCRIBE without one
  // leaves them without [MQTT 5 §3.8.2.1.2]. (0 and repeats were refused as protocol errors: wellformed.ts.)
  const subscriptionId = conn.version === 5 ? packet.properties?.subscriptionIdentifier : undefined;
  conn.outbox.hold();
  try {
    const granted: number[] = [];
    for (const s of packet.subscriptions) {
      granted.push(await subscribeOne(conn, s, subscriptionId));
      if (conn.phase === 'closed') return;
    }
    await conn.saveSession();
    conn.send({ cmd: 'suback', messageId, granted });
  } finally {
    conn.outbox.release();
  }
}
