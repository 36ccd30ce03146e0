import type { IPublishPacket } from 'mqtt-packet';
import type { PublishOutcome } from '../../platform/types';
import type { Client } from '../client';
import { reasonFromStatus, RC } from '../codes';
import { parseTopicName, TopicProblem } from '../topics';

/**
 * Acknowledgements go out in the order the PUBLISHes arrived [MQTT-4.6.0-2], and only once the
 * channel actor has stored the message (PUBACK/PUBREC = durable). Publishes are issued to the
 * platform in arrival order without waiting for each other, so one client can pipeline.
 */
const ackChains = new WeakMap<Client, Promise<void>>();
const inflightIn = new WeakMap<Client, number>();

function ack(client: Client, packet: IPublishPacket, rc: number, reason?: string): void {
  const messageId = packet.messageId!;
  const cmd = packet.qos === 1 ? 'puback' : 'pubrec';
  if (client.version === 5) client.send({ cmd, messageId, reasonCode: rc, ...(reason && rc >= 0x80 ? { properties: { reasonString: reason } } : {}) });
  else client.send({ cmd, messageId });
}

/** A refusal: v5 says why in PUBACK/PUBREC; 3.1.1 has no negative ack, so the connection closes [MQTT-3.3.5-2]. */
function refuse(client: Client, packet: IPublishPacket, rc: number, reason: string): void {
  if (client.version === 5) {
    if (packet.qos > 0) ack(client, packet, rc, reason);
    else client.ctx.log(`client ${client.id}: QoS 0 publish refused: ${reason}`);
    return;
  }
  client.disconnect(rc, reason, false);
}

function resolveTopic(client: Client, packet: IPublishPacket): string | null {
  const alias = packet.properties?.topicAlias;
  if (client.version !== 5 || alias === undefined) return packet.topic;
  // [MQTT-3.3.2-8/9] aliases are 1..Topic Alias Maximum; an empty topic needs a known alias.
  if (alias === 0 || alias > client.ctx.limits.topicAliasMaximum) {
    client.disconnect(RC.TopicAliasInvalid, `topic alias ${alias} out of range`, false);
    return null;
  }
  if (packet.topic) {
    client.aliases.set(alias, packet.topic);
    return packet.topic;
  }
  const known = client.aliases.get(alias);
  if (!known) client.disconnect(RC.ProtocolError, `unknown topic alias ${alias}`, false);
  return known ?? null;
}

export async function handlePublish(client: Client, packet: IPublishPacket): Promise<void> {
  const principal = client.principal!;
  if (packet.qos === 2 && client.qos2In.has(packet.messageId!)) {
    // A resent QoS 2 PUBLISH before PUBREL: acknowledge again, store nothing twice [MQTT-4.3.3-2].
    return ack(client, packet, RC.Success);
  }
  const topic = resolveTopic(client, packet);
  if (topic === null) return;
  let address;
  try {
    address = parseTopicName(topic);
  } catch (e) {
    return refuse(client, packet, RC.TopicNameInvalid, e instanceof TopicProblem ? e.message : 'invalid topic');
  }
  if (!client.takeToken()) return refuse(client, packet, client.version === 5 ? RC.QuotaExceeded : RC.MessageRateTooHigh, 'publish rate limit exceeded');
  if (packet.qos > 0) {
    const n = (inflightIn.get(client) ?? 0) + 1;
    // [MQTT-3.3.4-9] more unacknowledged QoS>0 PUBLISHes than our Receive Maximum.
    if (client.version === 5 && n > client.ctx.limits.receiveMaximum) return client.disconnect(RC.ReceiveMaximumExceeded, 'receive maximum exceeded', false);
    inflightIn.set(client, n);
  }
  const [decision] = await client.ctx.platform.authorize(principal, [{ channel: address.channel, action: 'messages:publish' }]);
  let outcome: Promise<PublishOutcome>;
  if (!decision?.allowed) {
    outcome = Promise.resolve({ ok: false, status: 403, code: 'forbidden', message: `not allowed to publish to channel ${address.channel}` });
  } else {
    const props = packet.properties;
    const payload = packet.payload;
    outcome = client.ctx.platform.publish({
      channel: address.channel,
      subtopic: address.subtopic,
      publisher: principal.id,
      protocol: 'mqtt',
      // v5 Content Type maps to the envelope's contentType; without it the payload is opaque bytes.
      contentType: props?.contentType ?? 'application/octet-stream',
      payload: typeof payload === 'string' ? new TextEncoder().encode(payload) : new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength),
      retain: packet.retain,
      ...(props?.userProperties ? { userProperties: props.userProperties } : {}),
      ...(props?.messageExpiryInterval !== undefined ? { messageExpiry: props.messageExpiryInterval } : {}),
    });
  }
  const previous = ackChains.get(client) ?? Promise.resolve();
  const next = previous.then(async () => {
    const o = await outcome;
    if (packet.qos > 0) inflightIn.set(client, Math.max(0, (inflightIn.get(client) ?? 1) - 1));
    if (client.closed) return;
    if (!o.ok) return refuse(client, packet, reasonFromStatus(o.status), o.message);
    if (packet.qos === 0) return;
    if (packet.qos === 2) client.qos2In.add(packet.messageId!);
    ack(client, packet, RC.Success);
  });
  ackChains.set(client, next);
}
