import type { IPublishPacket } from 'mqtt-packet';
import { utf8Text } from '../../../shared/envelope';
import { LINK_LIMITS } from '../../../shared/link';
import type { Address } from '../../../shared/topics';
import { disconnectFromStatus, reasonFromStatus, RC } from '../codes';
import type { Connection } from '../connection';
import { publishContentType, publishFormat, responseTopicProblem } from '../format';
import { TokenBucket } from '../limits';
import type { PublishOutcome, PublishRequest } from '../../platform/types';
import { hasWildcard, TopicProblem } from '../topics';

/**
 * Inbound PUBLISH: resolve alias → validate topic → rate → authorize → platform.publish →
 * acknowledge. PUBACK/PUBREC go out only once the channel actor has stored the message (so an
 * acknowledged message is durable), and always in the order the PUBLISHes came [MQTT-4.6.0-2/3].
 * The handler returns as soon as the publish is issued: one client can pipeline many.
 */

/** Content types a channel accepts, and user properties a link frame carries (shared/link.ts LINK_LIMITS). */
const MAX_CONTENT_TYPE = 255;
export function propertiesProblem(props: { contentType?: string; userProperties?: Record<string, string | string[]> } | undefined): string | null {
  if (props?.contentType !== undefined && props.contentType.length > MAX_CONTENT_TYPE) return `Content Type longer than ${MAX_CONTENT_TYPE} characters`;
  const user = props?.userProperties;
  if (!user) return null;
  let pairs = 0;
  for (const [k, v] of Object.entries(user)) {
    for (const x of Array.isArray(v) ? v : [v]) {
      if (++pairs > LINK_LIMITS.properties) return `more than ${LINK_LIMITS.properties} User Properties`;
      if (k.length > LINK_LIMITS.stringLength || x.length > LINK_LIMITS.stringLength) return `a User Property longer than ${LINK_LIMITS.stringLength} characters`;
    }
  }
  return null;
}

interface Result {
  rc: number;
  reason?: string;
  /** v5, QoS 0: the DISCONNECT code this refusal deserves (rate, size), if any. */
  qos0?: number | null;
  /**
   * The same message sent again would be refused again (not allowed, no such channel, bad topic,
   * payload the channel rejects or too large for it) — unlike a rate limit, a platform that is
   * away, or a withdrawn credential (which ends the connection anyway).
   */
  lasting?: boolean;
}

/** Platform refusals that a resend cannot change (403/404: not allowed or no such channel; 400/415: payload; 413: size). */
const LASTING = new Set([400, 403, 404, 413, 415]);

function ack(conn: Connection, packet: IPublishPacket, rc: number, reason?: string): void {
  const messageId = packet.messageId ?? 0;
  const cmd = packet.qos === 1 ? 'puback' : 'pubrec';
  conn.corkTurn();
  if (conn.version === 5) conn.send({ cmd, messageId, reasonCode: rc, ...(reason !== undefined && rc >= 0x80 ? { properties: { reasonString: reason } } : {}) });
  else conn.send({ cmd, messageId });
}

/**
 * v5 says why in PUBACK/PUBREC; a QoS 0 refusal has no answer, so it is dropped — or, for rate and
 * size, the client is disconnected (0x96/0x95). 3.1.1 has no negative ack: the connection closes [MQTT-3.3.5-2 (3.1.1)],
 * except for a QoS 1/2 message the client sends again (DUP) after such a close that is refused
 * again for a lasting reason: that one gets its PUBACK/PUBREC and is dropped (logged), the other
 * answer [MQTT-3.3.5-2] allows. Closing again would only make the client reconnect and resend it,
 * forever, with everything it queued behind it (Paho resends unacknowledged messages on every
 * reconnect, clean session or not); Mosquitto 2 acknowledges every refused publish.
 */
function refuse(conn: Connection, packet: IPublishPacket, r: Result): void {
  const reason = r.reason ?? 'refused';
  conn.ctx.counters.refusedPublish(r.rc);
  if (conn.version === 4) {
    if (packet.qos > 0 && packet.dup && r.lasting) {
      conn.log(`resent QoS ${packet.qos} publish to ${packet.topic} refused again (${reason}): acknowledged and dropped`);
      return ack(conn, packet, RC.Success);
    }
    return conn.disconnect(r.rc, `publish refused: ${reason}`);
  }
  if (packet.qos > 0) return ack(conn, packet, r.rc, reason);
  if (r.qos0) return conn.disconnect(r.qos0, reason);
  conn.log(`QoS 0 publish to ${packet.topic} dropped: ${reason}`);
}

/** A publish that breaks the protocol: refused (counted with the others) and the connection ends with `rc`. */
function refuseAndEnd(conn: Connection, rc: number, reason: string): void {
  conn.ctx.counters.refusedPublish(rc);
  conn.disconnect(rc, reason);
}

/** v5 topic aliases, client → server [MQTT-3.3.2-8..12]. Null when the connection was closed for a bad one. */
function resolveTopic(conn: Connection, packet: IPublishPacket): string | null {
  const alias = packet.properties?.topicAlias;
  if (conn.version !== 5 || alias === undefined) return packet.topic;
  if (alias === 0 || alias > conn.topicAliasMaximum) {
    refuseAndEnd(conn, RC.TopicAliasInvalid, conn.topicAliasMaximum === 0 ? `topic alias ${alias}: this connection takes none` : `topic alias ${alias} is outside 1..${conn.topicAliasMaximum}`);
    return null;
  }
  if (packet.topic) {
    conn.aliases.set(alias, packet.topic);
    return packet.topic;
  }
  const known = conn.aliases.get(alias);
  if (known === undefined) refuseAndEnd(conn, RC.ProtocolError, `topic alias ${alias} has no topic yet`);
  return known ?? null;
}

/** Everything between a valid topic and the acknowledgement; never rejects. */
function store(conn: Connection, packet: IPublishPacket, address: Address): Promise<Result> {
  const principal = conn.principal!;
  const payload = typeof packet.payload === 'string' ? new TextEncoder().encode(packet.payload) : new Uint8Array(packet.payload.buffer, packet.payload.byteOffset, packet.payload.byteLength);
  const props = packet.properties;
  // §3.3.2.3.2: a payload declared UTF-8 that is not gets 0x99.
  if (props?.payloadFormatIndicator && utf8Text(payload) === null) return Promise.resolve({ rc: RC.PayloadFormatInvalid, reason: 'payload is not UTF-8 as its Payload Format Indicator says' });
  const unfit = propertiesProblem(props);
  if (unfit) return Promise.resolve({ rc: RC.ImplementationSpecificError, reason: unfit });
  // A Response Topic that is a topic name (handlePublish checked) but no Edgeflux one: nobody could answer on it.
  const responseTopic = props?.responseTopic;
  const unanswerable = responseTopic === undefined ? null : responseTopicProblem(responseTopic);
  if (unanswerable) return Promise.resolve({ rc: RC.ImplementationSpecificError, reason: unanswerable.reason });
  const req: PublishRequest = {
    channel: address.channel,
    subtopic: address.subtopic,
    publisher: principal.id,
    protocol: 'mqtt',
    contentType: publishContentType(props?.contentType, props?.payloadFormatIndicator),
    payload,
    retain: packet.retain,
    qos: packet.qos,
  };
  if (props?.userProperties) req.userProperties = props.userProperties;
  if (props?.messageExpiryInterval !== undefined) req.messageExpiry = props.messageExpiryInterval;
  const origin = conn.origin;
  if (origin !== undefined) req.origin = origin;
  if (props) {
    // Passed on unaltered [MQTT-3.3.2-4], [MQTT-3.3.2-15], [MQTT-3.3.2-16], [MQTT-3.3.2-20] (format.ts).
    const format = publishFormat(props.contentType, props.payloadFormatIndicator);
    if (format !== undefined) req.format = format;
    if (responseTopic !== undefined) req.responseTopic = responseTopic;
    if (props.correlationData !== undefined) req.correlation = new Uint8Array(props.correlationData.buffer, props.correlationData.byteOffset, props.correlationData.byteLength);
  }
  let issued: Promise<PublishOutcome>;
  try {
    issued = conn.ctx.platform.publish(req);
  } catch (e) {
    issued = Promise.reject(e);
  }
  return issued.then(
    (outcome): Result => (outcome.ok ? STORED : { rc: reasonFromStatus(outcome.status), reason: outcome.message, qos0: disconnectFromStatus(outcome.status), lasting: LASTING.has(outcome.status) }),
    (e: unknown): Result => ({ rc: RC.UnspecifiedError, reason: `not stored: ${e instanceof Error ? e.message : String(e)}` }),
  );
}

const STORED: Result = Object.freeze({ rc: RC.Success });

/** Authorize (usually a cached answer, then no await at all) and rate-limit, then issue the publish (not awaited). */
function admit(conn: Connection, packet: IPublishPacket, address: Address): { outcome: Promise<Result> } | Promise<{ outcome: Promise<Result> }> {
  // A cached decision is not trusted past the credential's expiry: the connection ends instead.
  if (conn.credentialExpired()) return { outcome: refused(RC.NotAuthorized, 'credential expired') };
  const cached = conn.permissions.allowedNow(address.channel, 'messages:publish');
  if (cached !== undefined) return { outcome: admitted(conn, packet, address, cached) };
  // Wrapped, so awaiting the decision does not also await the store.
  return conn.permissions.allowed(address.channel, 'messages:publish').then(
    (ok) => ({ outcome: admitted(conn, packet, address, ok) }),
    (e: unknown) => ({ outcome: refused(RC.UnspecifiedError, `authorization unavailable: ${e instanceof Error ? e.message : String(e)}`) }),
  );
}

const refused = (rc: number, reason: string, qos0: number | null = null, lasting = false): Promise<Result> => Promise.resolve({ rc, reason, qos0, lasting });

function admitted(conn: Connection, packet: IPublishPacket, address: Address, allowed: boolean): Promise<Result> {
  if (!allowed) return refused(RC.NotAuthorized, `not allowed to publish to channel ${address.channel}`, null, true);
  const { limits, ctx } = conn;
  const key = conn.principal!.id;
  let bucket = ctx.buckets.get(key);
  if (!bucket) ctx.buckets.set(key, (bucket = new TokenBucket(limits.publishRate, limits.publishBurst, ctx.clock)));
  if (!bucket.take()) return refused(RC.QuotaExceeded, `this device sent more than ${limits.publishRate} publishes per second (the bridge's limit per device)`, RC.MessageRateTooHigh);
  return store(conn, packet, address);
}

/**
 * Returns nothing when the publish was issued at once (the usual case: a cached decision), so the
 * reader goes straight on to the next packet; a promise when the next packet must wait for this
 * one (a decision to fetch, or too many publishes not yet stored).
 */
export function handlePublish(conn: Connection, packet: IPublishPacket): Promise<void> | void {
  const { limits } = conn;
  const { qos } = packet;
  const id = packet.messageId ?? 0;
  // [MQTT-3.2.2-11 (5.0)] above the Maximum QoS of our CONNACK.
  if (conn.version === 5 && qos > limits.maxQos) return refuseAndEnd(conn, RC.QosNotSupported, `QoS ${qos} is above the maximum ${limits.maxQos}`);
  if (qos === 2 && conn.qos2In.has(id)) {
    // [MQTT-4.3.3-10] a resent QoS 2 PUBLISH before PUBREL: PUBREC again, nothing published twice.
    conn.acks = conn.acks.then(() => {
      if (conn.qos2In.has(id) && conn.phase === 'open') ack(conn, packet, RC.Success);
    });
    return;
  }
  const topic = resolveTopic(conn, packet);
  if (topic === null) return;
  // [MQTT-3.3.2-2] a topic name with wildcards is a protocol violation, not just an unknown address.
  if (hasWildcard(topic)) return refuseAndEnd(conn, RC.TopicNameInvalid, `wildcards in topic name ${topic}`);
  // [MQTT-3.3.2-14] a Response Topic is a topic name: wildcards (or nothing) make the packet a protocol error.
  const responseTopic = packet.properties?.responseTopic;
  if (responseTopic !== undefined) {
    const problem = responseTopicProblem(responseTopic);
    if (problem?.protocol) return refuseAndEnd(conn, RC.ProtocolError, problem.reason);
  }
  if (qos > 0) {
    // [MQTT-3.3.4-7] no more unacknowledged QoS 1/2 PUBLISHes than our Receive Maximum.
    if (conn.version === 5 && conn.inboundInflight >= limits.receiveMaximum) return refuseAndEnd(conn, RC.ReceiveMaximumExceeded, `more than ${limits.receiveMaximum} unacknowledged publishes`);
    conn.inboundInflight++;
  }
  if (qos === 2) conn.qos2In.add(id);

  let address: Address;
  try {
    address = conn.addressOf(topic);
  } catch (e) {
    return issued(conn, packet, Promise.resolve({ rc: RC.TopicNameInvalid, reason: e instanceof TopicProblem ? e.message : 'invalid topic', lasting: true }));
  }
  const a = admit(conn, packet, address);
  // A decision not cached yet is awaited here (packets after this one wait: arrival order).
  return 'outcome' in a ? issued(conn, packet, a.outcome) : a.then((x) => issued(conn, packet, x.outcome));
}

/** The publish is on its way: acknowledge it in order once settled, and apply back-pressure. */
function issued(conn: Connection, packet: IPublishPacket, outcome: Promise<Result>): Promise<void> | void {
  const { qos } = packet;
  const id = packet.messageId ?? 0;
  conn.unstored++;
  if (qos === 0) {
    // Nothing to acknowledge: only a refusal joins the chain of acknowledgements (after those
    // already due), so a stored QoS 0 publish costs no link in it.
    void outcome.then((r) => {
      unstoredSettled(conn);
      if (r.rc >= 0x80) conn.acks = conn.acks.then(() => (conn.phase === 'open' ? refuse(conn, packet, r) : undefined));
    });
  } else {
    conn.acks = conn.acks.then(async () => {
      const r = await outcome;
      conn.inboundInflight--;
      if (conn.phase !== 'open') return;
      if (r.rc >= 0x80) {
        if (qos === 2) conn.qos2In.delete(id);
        return refuse(conn, packet, r);
      }
      if (qos === 2) conn.markDirty();
      ack(conn, packet, RC.Success);
    });
    const settled = outcome.then((r) => {
      if (qos === 2) {
        if (conn.qos2Storing.get(id) === settled) conn.qos2Storing.delete(id);
        // Refused: not a copy to answer PUBREC for — also once the connection has gone, before
        // `end` saves the session (it waits for these).
        if (r.rc >= 0x80) conn.qos2In.delete(id);
      }
      unstoredSettled(conn);
    });
    if (qos === 2) conn.qos2Storing.set(id, settled);
  }
  // Back-pressure: the reader hands over no further packet until one settles.
  if (conn.unstored >= conn.limits.maxUnstoredPublishes) return new Promise<void>((r) => (conn.unstoredWaiter = r));
}

function unstoredSettled(conn: Connection): void {
  conn.unstored--;
  const wake = conn.unstoredWaiter;
  conn.unstoredWaiter = null;
  wake?.();
}
