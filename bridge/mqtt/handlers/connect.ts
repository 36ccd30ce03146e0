import { randomUUID } from 'node:crypto';
import type { IConnackPacket, IConnectPacket } from 'mqtt-packet';
import { PlatformError } from '../../platform/types';
import type { Client } from '../client';
import { connackV4, RC } from '../codes';
import { parseTopicName, TopicProblem } from '../topics';
import { publishWill } from './will';

const MAX_CLIENT_ID = 256;

/** CONNACK with a failure code, then close — never a silent drop [MQTT-3.2.2-5]. */
function refuse(client: Client, rc: number, reason: string): void {
  const packet: IConnackPacket =
    client.version === 5 ? { cmd: 'connack', sessionPresent: false, reasonCode: rc, properties: { reasonString: reason } } : { cmd: 'connack', sessionPresent: false, returnCode: connackV4(rc) };
  client.send(packet);
  client.ctx.log(`refused CONNECT from ${client.id || '(no id)'}: ${reason}`);
  client.end(true);
}

export async function handleConnect(client: Client, packet: IConnectPacket): Promise<void> {
  // [MQTT-3.1.0-2] a second CONNECT is a protocol violation.
  if (client.connected) return client.disconnect(RC.ProtocolError, 'second CONNECT', false);
  const version = packet.protocolVersion ?? 4;
  if (version !== 4 && version !== 5) {
    client.version = 4;
    return refuse(client, RC.UnsupportedProtocolVersion, `protocol version ${version} is not supported; use 3.1.1 (4) or 5`);
  }
  client.version = version;
  const props = packet.properties ?? {};

  // [MQTT-3.1.3-6/7/8] empty client id: assigned by the server if the session is clean (v5: always).
  let id = packet.clientId ?? '';
  let assigned = false;
  if (id === '') {
    if (version === 4 && !packet.clean) return refuse(client, RC.ClientIdentifierNotValid, 'an empty client id needs clean session [MQTT-3.1.3-8]');
    id = `ef-${randomUUID()}`;
    assigned = true;
  }
  if (id.length > MAX_CLIENT_ID) return refuse(client, RC.ClientIdentifierNotValid, `client id longer than ${MAX_CLIENT_ID} characters`);
  client.id = id;

  if (packet.password === undefined || packet.password.length === 0) return refuse(client, RC.BadUserNameOrPassword, 'password (device key or API key) required');
  try {
    client.principal = await client.ctx.platform.authenticate(packet.username || undefined, packet.password.toString('utf8'));
  } catch (e) {
    const status = e instanceof PlatformError ? e.status : 503;
    const rc = status === 401 ? RC.BadUserNameOrPassword : status === 403 ? RC.NotAuthorized : RC.ServerUnavailable;
    return refuse(client, rc, e instanceof Error ? e.message : 'authentication failed');
  }
  if (client.closed) return;

  const device = client.deviceId;
  if (device && (client.ctx.perDevice.get(device) ?? 0) >= client.ctx.limits.maxConnectionsPerDevice) {
    return refuse(client, RC.QuotaExceeded, `device already has ${client.ctx.limits.maxConnectionsPerDevice} connections`);
  }

  // The will is checked now, so a device cannot leave a will it could never publish.
  if (packet.will) {
    try {
      const { channel } = parseTopicName(packet.will.topic);
      const [d] = await client.ctx.platform.authorize(client.principal, [{ channel, action: 'messages:publish' }]);
      if (!d?.allowed) return refuse(client, RC.NotAuthorized, `will topic not allowed: ${d?.reason ?? 'denied'}`);
    } catch (e) {
      if (e instanceof TopicProblem) return refuse(client, version === 5 ? RC.TopicNameInvalid : RC.NotAuthorized, `will topic: ${e.message}`);
      return refuse(client, RC.ServerUnavailable, 'could not check the will topic');
    }
    client.will = {
      topic: packet.will.topic,
      payload: Buffer.from(packet.will.payload ?? Buffer.alloc(0)),
      qos: packet.will.qos ?? 0,
      retain: packet.will.retain ?? false,
      ...(packet.will.properties ? { properties: packet.will.properties } : {}),
      delay: packet.will.properties?.willDelayInterval ?? 0,
    };
  }

  // [MQTT-3.1.4-3] session takeover: the existing connection with this client id is closed.
  const previous = client.ctx.clients.get(id);
  if (previous && previous !== client) previous.disconnect(RC.SessionTakenOver, 'session taken over by a new connection', false);
  client.ctx.clients.set(id, client);
  if (device) client.ctx.perDevice.set(device, (client.ctx.perDevice.get(device) ?? 0) + 1);

  const limits = client.ctx.limits;
  let keepalive = packet.keepalive ?? 0;
  const serverKeepAlive = version === 5 && (keepalive === 0 || keepalive > limits.maxKeepalive) ? limits.maxKeepalive : undefined;
  if (serverKeepAlive !== undefined) keepalive = serverKeepAlive;
  if (props.receiveMaximum) client.receiveMaximum = props.receiveMaximum;
  if (props.maximumPacketSize) client.maxPacketSize = props.maximumPacketSize;

  client.onEnd((graceful) => {
    if (client.ctx.clients.get(id) === client) client.ctx.clients.delete(id);
    for (const sub of client.subs.values()) for (const h of sub.handles) h.close();
    for (const share of client.ctx.shares.values()) share.members = share.members.filter((m) => m !== client);
    if (device) {
      const left = (client.ctx.perDevice.get(device) ?? 1) - 1;
      if (left <= 0) {
        client.ctx.perDevice.delete(device);
        client.ctx.platform.presence(device, false);
      } else client.ctx.perDevice.set(device, left);
    }
    // [MQTT-3.1.2-8] the will is published when the connection ends without DISCONNECT.
    if (!graceful && client.will) publishWill(client, client.will);
  });

  client.connectedNow(keepalive);
  if (device) client.ctx.platform.presence(device, true);
  const connack: IConnackPacket =
    version === 5
      ? {
          cmd: 'connack',
          sessionPresent: false,
          reasonCode: RC.Success,
          properties: {
            ...(assigned ? { assignedClientIdentifier: id } : {}),
            ...(serverKeepAlive !== undefined ? { serverKeepAlive } : {}),
            // Sessions are not kept after the connection ends yet: say so instead of pretending.
            ...(props.sessionExpiryInterval ? { sessionExpiryInterval: 0 } : {}),
            maximumPacketSize: limits.maxPacketSize,
            receiveMaximum: limits.receiveMaximum,
            topicAliasMaximum: limits.topicAliasMaximum,
            retainAvailable: true,
            wildcardSubscriptionAvailable: true,
            sharedSubscriptionAvailable: true,
            subscriptionIdentifiersAvailable: false,
          },
        }
      : { cmd: 'connack', sessionPresent: false, returnCode: 0 };
  client.send(connack);
}
