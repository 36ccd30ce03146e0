import { randomUUID } from 'node:crypto';
import mqtt, { type IConnackPacket, type IConnectPacket } from 'mqtt-packet';
import { PlatformError } from '../../platform/types';
import { connackV4, RC } from '../codes';
import type { Connection } from '../connection';
import { protocolProblem } from '../wellformed';
import type { SessionLease } from '../session';
import { resumeSession } from '../subscriptions';
import { parseTopicName, TopicProblem } from '../topics';
import type { Will } from '../wills';
import { checkContent } from '../../../shared/content';
import { mediaTypeProblem, utf8Text } from '../../../shared/envelope';
import { publishContentType, publishFormat, responseTopicProblem } from '../format';
import { propertiesProblem } from './publish';

type WillSpec = NonNullable<IConnectPacket['will']>;

/**
 * v5 CONNACK properties a client can do without, in the order they are left out when the CONNACK
 * would exceed the client's Maximum Packet Size [MQTT-3.1.2-24 (5.0)]: the reason string, then
 * those that only repeat a default (MQTT 5 §3.2.2.3), then Topic Alias Maximum — absent, it means 0
 * (no aliases), which is safe: the connection then takes none. A property whose absence would say
 * something untrue is never left out — what the client must know: Assigned Client Identifier,
 * Server Keep Alive, Session Expiry Interval, Receive Maximum, Maximum QoS, Maximum Packet Size.
 * (Subscription Identifiers Available is not sent at all: absent means 1, which is true
 * [MQTT 5 §3.2.2.3.12]. Were it ever 0, it would belong to that list, never to this one.)
 */
const CONNACK_OPTIONAL = ['reasonString', 'wildcardSubscriptionAvailable', 'sharedSubscriptionAvailable', 'retainAvailable', 'topicAliasMaximum'] as const;
/** The smallest CONNACK: fixed header, flags, reason code and (v5) an empty property length. No client maximum below it can be answered. */
const MIN_CONNACK = 5;

/** The CONNACK cut down to the client's Maximum Packet Size, or null when even its minimal form is larger. */
function fitConnack(conn: Connection, packet: IConnackPacket): IConnackPacket | null {
  if (conn.version !== 5 || !Number.isFinite(conn.clientMaxPacketSize)) return packet;
  const properties = { ...packet.properties };
  for (const optional of [undefined, ...CONNACK_OPTIONAL]) {
    if (optional) delete properties[optional];
    const fitted = { ...packet, properties };
    if (mqtt.generate(fitted, { protocolVersion: 5 }).length <= conn.clientMaxPacketSize) return fitted;
  }
  return null;
}

/**
 * Every refused CONNECT is answered with a CONNACK saying why, then closed [MQTT-3.2.2-7 (5.0),
 * MQTT-3.2.2-5 (3.1.1)] — unless not even a CONNACK without a reason string fits the client's
 * Maximum Packet Size: then it is closed unanswered [MQTT-3.1.2-24 (5.0)], as Mosquitto does.
 */
function refuse(conn: Connection, rc: number, reason: string): void {
  if (conn.phase === 'closed') return;
  conn.ctx.counters.connect(rc);
  const packet = fitConnack(
    conn,
    conn.version === 5 ? { cmd: 'connack', sessionPresent: false, reasonCode: rc, properties: { reasonString: reason } } : { cmd: 'connack', sessionPresent: false, returnCode: connackV4(rc) },
  );
  if (packet) conn.send(packet);
  void conn.end({ reason: `CONNECT refused (0x${rc.toString(16)}): ${reason}${packet ? '' : ` (no CONNACK: larger than the client's maximum of ${conn.clientMaxPacketSize} bytes)`}`, will: false });
}

/** A CONNECT that breaks its own packet's rules: v5 is told (CONNACK 0x81 / 0x82) [MQTT 5 §4.13]; 3.1.1 is closed unanswered [MQTT-3.1.4-1 (3.1.1)]. */
function refuseMalformed(conn: Connection, rc: number, reason: string): void {
  if (conn.version === 5) return refuse(conn, rc, reason);
  conn.ctx.counters.connect(rc);
  void conn.end({ reason: `CONNECT refused: ${reason}`, will: false });
}

const authFailure = (e: unknown): number => {
  const status = e instanceof PlatformError ? e.status : 503;
  return status === 401 ? RC.BadUserNameOrPassword : status === 403 ? RC.NotAuthorized : RC.ServerUnavailable;
};

const contentProblem = (contentType: string, payload: Uint8Array, now: number): string | null => {
  const checked = checkContent(contentType, payload, now);
  return checked.ok ? null : checked.message;
};

/** The will is checked at CONNECT, so a client cannot leave a will it could never publish. Returns a refusal code or the will. */
async function acceptWill(conn: Connection, w: WillSpec): Promise<Will | [number, string]> {
  let address;
  try {
    address = parseTopicName(w.topic);
  } catch (e) {
    return [RC.TopicNameInvalid, `will topic: ${e instanceof TopicProblem ? e.message : 'invalid'}`];
  }
  const qos = w.qos ?? 0;
  if (qos > conn.limits.maxQos) return [RC.QosNotSupported, `will QoS ${qos} above the maximum ${conn.limits.maxQos}`];
  const payload = typeof w.payload === 'string' ? new TextEncoder().encode(w.payload) : new Uint8Array(w.payload);
  const props = w.properties;
  if (props?.payloadFormatIndicator && utf8Text(payload) === null) return [RC.PayloadFormatInvalid, 'will payload is not UTF-8 as its Payload Format Indicator says'];
  const unfit = propertiesProblem(props);
  if (unfit) return [RC.ImplementationSpecificError, `will: ${unfit}`];
  // [MQTT-3.3.2-14] as for a PUBLISH (handlers/publish.ts): wildcards are a protocol error; a topic nobody could answer on, refused.
  const responseTopic = props?.responseTopic;
  const unanswerable = responseTopic === undefined ? null : responseTopicProblem(responseTopic);
  if (unanswerable) return [unanswerable.protocol ? RC.ProtocolError : RC.ImplementationSpecificError, `will: ${unanswerable.reason}`];
  const format = publishFormat(props?.contentType, props?.payloadFormatIndicator);
  const correlation = props?.correlationData;
  const contentType = publishContentType(props?.contentType, props?.payloadFormatIndicator);
  const declared = contentType === '' ? null : mediaTypeProblem(contentType);
  if (declared) return [RC.PayloadFormatInvalid, `will: ${declared}`];
  try {
    if (!(await conn.permissions.allowed(address.channel, 'messages:publish'))) return [RC.NotAuthorized, `not allowed to publish the will to channel ${address.channel}`];
  } catch (e) {
    return [authFailure(e) === RC.NotAuthorized ? RC.NotAuthorized : RC.ServerUnavailable, 'could not check the will topic'];
  }
  // What the channel actor would refuse the will for when it fires (objects/channel/payload.ts),
  // asked now; a will without a content type gets the channel's default there, so it is checked
  // against that (a 3.1.1 "offline" will on a SenML channel could never be stored).
  if (!(w.retain && payload.length === 0)) {
    let stored: string | null = contentType === '' ? null : contentType;
    if (stored === null && conn.ctx.platform.channelDefaults) {
      try {
        stored = (await conn.ctx.platform.channelDefaults(address.channel)).defaultContentType;
      } catch (e) {
        // Unknown now: the actor checks it when the will fires (and the bridge logs a refusal).
        conn.ctx.log?.(`will of ${conn.clientId}: the channel's default content type is unknown (${e instanceof Error ? e.message : String(e)}); not checked at CONNECT`);
      }
    }
    const invalid = stored === null ? null : contentProblem(stored, payload, conn.now());
    if (invalid) return [RC.PayloadFormatInvalid, `will: ${invalid}${contentType === '' ? ` (the channel's default content type is ${stored})` : ''}`];
  }
  return {
    request: {
      channel: address.channel,
      subtopic: address.subtopic,
      protocol: 'mqtt',
      contentType,
      payload,
      retain: w.retain ?? false,
      qos,
      ...(props?.userProperties ? { userProperties: props.userProperties } : {}),
      ...(props?.messageExpiryInterval !== undefined ? { messageExpiry: props.messageExpiryInterval } : {}),
      ...(format !== undefined ? { format } : {}),
      ...(responseTopic !== undefined ? { responseTopic } : {}),
      ...(correlation !== undefined ? { correlation: new Uint8Array(correlation) } : {}),
      // Published on the session's behalf: a No Local subscription of this client id does not get it
      // back [MQTT-3.8.3-3] (Mosquitto 2 neither). One per connection, so always, not only with one.
      origin: conn.sessionKey,
    },
    delay: props?.willDelayInterval ?? 0,
  };
}

/** CONNECT: validate → authenticate → limits → will → claim the session → CONNACK → resume. */
export async function handleConnect(conn: Connection, packet: IConnectPacket): Promise<void> {
  // [MQTT-3.1.0-2] a second CONNECT is a protocol violation.
  if (conn.phase !== 'new') return conn.disconnect(RC.ProtocolError, 'second CONNECT [MQTT-3.1.0-2]');
  conn.phase = 'connecting';
  const { ctx, limits } = conn;
  const level = packet.protocolVersion;
  // [MQTT-3.1.2-2] protocol levels other than 3 (3.1, "MQIsdp"), 4 (3.1.1) and 5: 0x01 / 0x84, then close.
  if (level !== 3 && level !== 4 && level !== 5) return refuse(conn, RC.UnsupportedProtocolVersion, `protocol level ${level} is not supported; use 3 (3.1), 4 (3.1.1) or 5`);
  // The name goes with the level: MQIsdp is 3.1's, MQTT 3.1.1's and 5's (Mosquitto refuses a mix too).
  if ((packet.protocolId === 'MQIsdp') !== (level === 3)) return refuse(conn, RC.UnsupportedProtocolVersion, `protocol name ${packet.protocolId} does not go with level ${level} (MQIsdp is level 3, MQTT levels 4 and 5)`);
  // MQTT 3.1 is served as 3.1.1 (the packets after CONNECT are the same on the wire), but for what
  // 3.1 lacks: an empty client id, and the CONNACK's Session Present flag (a reserved 0 in 3.1).
  const version = level === 5 ? 5 : 4;
  conn.version = version;
  const props = packet.properties ?? {};
  if (props.authenticationMethod !== undefined) return refuse(conn, RC.BadAuthenticationMethod, 'enhanced authentication is not supported; send the key as the password');
  if (props.receiveMaximum === 0 || props.maximumPacketSize === 0) return refuse(conn, RC.ProtocolError, 'Receive Maximum and Maximum Packet Size cannot be 0');
  // [MQTT-3.1.2-24 (5.0)] from here on, refusals included, nothing larger than the client's maximum is
  // sent. A repeated property is an array (mqtt-packet): only a single number is taken, and the
  // repeat is refused below (protocolProblem).
  if (typeof props.maximumPacketSize === 'number') conn.clientMaxPacketSize = props.maximumPacketSize;
  if (conn.clientMaxPacketSize < MIN_CONNACK) return refuse(conn, RC.PacketTooLarge, `Maximum Packet Size ${conn.clientMaxPacketSize} is below the smallest CONNACK (${MIN_CONNACK} bytes)`);
  const problem = protocolProblem(packet);
  if (problem) return refuse(conn, RC.ProtocolError, problem);
  // mqtt-packet parses both of these without complaint.
  if (packet.will && (packet.will.qos as number) > 2) return refuseMalformed(conn, RC.MalformedPacket, 'will QoS 3 [MQTT-3.1.2-12]');
  if (version === 4 && packet.password !== undefined && packet.username === undefined) return refuseMalformed(conn, RC.ProtocolError, 'Password flag without User Name flag [MQTT-3.1.2-22 (3.1.1)]');

  // [MQTT-3.1.3-6..8 (3.1.1)] an empty client id is assigned one, only with a clean session.
  let clientId = packet.clientId ?? '';
  const assigned = clientId === '';
  // (3.1's own limit of 23 characters is not held to: maxClientIdLength applies, as for 3.1.1.)
  if (assigned && level === 3) return refuse(conn, RC.ClientIdentifierNotValid, 'MQTT 3.1 needs a client id; 3.1.1 and 5 may leave it empty');
  if (assigned) {
    if (!packet.clean) return refuse(conn, RC.ClientIdentifierNotValid, 'an empty client id needs Clean Session / Clean Start');
    clientId = `auto-${randomUUID()}`;
  }
  if (clientId.length > limits.maxClientIdLength) return refuse(conn, RC.ClientIdentifierNotValid, `client id longer than ${limits.maxClientIdLength} characters`);
  conn.clientId = clientId;

  if (!packet.password || packet.password.length === 0) return refuse(conn, RC.BadUserNameOrPassword, 'the password (device key or token) is required');
  let principal;
  try {
    principal = await ctx.platform.authenticate(packet.username || undefined, packet.password.toString('utf8'));
  } catch (e) {
    return refuse(conn, authFailure(e), e instanceof Error ? e.message : 'authentication failed');
  }
  if (conn.phase !== 'connecting') return;
  if (ctx.certificateMustMatchUsername && conn.info.certificateCN !== packet.username) return refuse(conn, RC.NotAuthorized, 'the client certificate is not for this device');
  conn.principal = principal;
  conn.sessionKey = `${principal.id}\u0000${clientId}`;

  // Connections of this device here, not counting the one this CONNECT takes over.
  const device = conn.deviceId;
  const open = device ? (ctx.devices.get(device) ?? 0) - (ctx.holders.has(conn.sessionKey) ? 1 : 0) : 0;
  if (device && open >= limits.maxConnectionsPerDevice) return refuse(conn, RC.QuotaExceeded, `device already has ${open} connections`);

  if (packet.will) {
    const w = await acceptWill(conn, packet.will);
    if (Array.isArray(w)) return refuse(conn, w[0], w[1]);
    conn.will = w;
  }
  if (conn.phase !== 'connecting') return;

  // 3.1.1: Clean Session 0 keeps the session (up to maxSessionExpiry); v5: Session Expiry Interval, capped.
  const requestedExpiry = version === 5 ? (props.sessionExpiryInterval ?? 0) : packet.clean ? 0 : limits.maxSessionExpiry;
  conn.sessionExpiry = Math.min(requestedExpiry, limits.maxSessionExpiry);
  let keepalive = packet.keepalive ?? 0;
  let serverKeepAlive: number | undefined;
  if (version === 5 && (keepalive === 0 || keepalive > limits.maxKeepalive)) keepalive = serverKeepAlive = limits.maxKeepalive;
  // Made before the session is claimed: a client that could not read it takes no session over.
  const connack = fitConnack(
    conn,
    version === 5
      ? {
          cmd: 'connack',
          sessionPresent: false,
          reasonCode: RC.Success,
          properties: {
            ...(assigned ? { assignedClientIdentifier: clientId } : {}),
            ...(serverKeepAlive !== undefined ? { serverKeepAlive } : {}),
            ...(conn.sessionExpiry !== requestedExpiry ? { sessionExpiryInterval: conn.sessionExpiry } : {}),
            ...(limits.maxQos < 2 ? { maximumQoS: limits.maxQos } : {}),
            receiveMaximum: limits.receiveMaximum,
            maximumPacketSize: limits.maxPacketSize,
            topicAliasMaximum: limits.topicAliasMaximum,
            retainAvailable: true,
            wildcardSubscriptionAvailable: true,
            sharedSubscriptionAvailable: true,
            // Subscription Identifiers Available: left out, absent means 1 (supported).
          },
        }
      : { cmd: 'connack', sessionPresent: false, returnCode: 0 },
  );
  if (!connack) return refuse(conn, RC.PacketTooLarge, `the CONNACK is larger than the client's Maximum Packet Size of ${conn.clientMaxPacketSize} bytes`);
  let lease: SessionLease;
  // While this CONNECT claims the session, an ended holder of it here that hears of the claim
  // (takenOver) knows the claim is local, not another bridge's.
  const key = conn.sessionKey;
  ctx.claiming.set(key, (ctx.claiming.get(key) ?? 0) + 1);
  try {
    lease = await ctx.store.open(key, conn, packet.clean ?? true, { expirySeconds: conn.sessionExpiry, ...(conn.will ? { will: { ...conn.will, publisher: principal.id } } : {}) });
  } catch (e) {
    return refuse(conn, RC.ServerUnavailable, `session store unavailable: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    const left = (ctx.claiming.get(key) ?? 1) - 1;
    if (left > 0) ctx.claiming.set(key, left);
    else ctx.claiming.delete(key);
  }
  conn.epoch = lease.epoch;
  if (conn.phase !== 'connecting') {
    // Gone while the session was being claimed: put it back as it was.
    await ctx.store.release(conn.sessionKey, lease.epoch, lease.state, lease.state ? conn.sessionExpiry : 0);
    return;
  }

  conn.keepalive = keepalive;
  // A Topic Alias Maximum left out of the CONNACK means 0: the client may send no alias (MQTT 5 §3.2.2.3.8).
  if (version === 5) conn.topicAliasMaximum = connack.properties?.topicAliasMaximum ?? 0;
  if (props.receiveMaximum) conn.clientReceiveMaximum = props.receiveMaximum;
  if (props.requestProblemInformation === false) conn.problemInformation = false;

  // [MQTT-3.2.2-2 (3.1.1), MQTT-3.2.2-3 (5.0)] Session Present: 1 only when a stored session is resumed.
  const sessionPresent = level !== 3 && lease.state !== null;
  // Sent before the connection is counted: one whose CONNACK did not go out is never registered.
  if (conn.send({ ...connack, sessionPresent }) !== 'sent') {
    void conn.end({ reason: 'CONNACK not sent', will: false });
    await ctx.store.release(conn.sessionKey, lease.epoch, lease.state, lease.state ? conn.sessionExpiry : 0);
    return;
  }
  conn.opened();
  conn.log(`connected (MQTT ${version === 5 ? '5' : level === 3 ? '3.1' : '3.1.1'}, ${principal.kind} ${principal.id}, keep alive ${keepalive} s, session ${lease.state ? 'resumed' : 'new'}, expiry ${conn.sessionExpiry} s)`);
  if (lease.state) await resumeSession(conn, lease.state);
  // A new session: shared subscriptions an earlier one left here are gone, and what they kept goes to the other members.
  else ctx.shares.claimed(conn.sessionKey);
}
