import type { Packet } from 'mqtt-packet';

/**
 * Protocol errors mqtt-packet parses without complaint, found before any handler sees the packet
 * (each closes the connection, v5 after DISCONNECT 0x82, as the handlers do for theirs):
 *
 * - a property other than User Property more than once [MQTT 5 §2.2.2.2]: mqtt-packet turns the
 *   repeats into an array, which nothing after it expects (a repeated Content Type reached the
 *   channel actor as an array). Subscription Identifier included: only a server → client PUBLISH
 *   may carry several [MQTT 5 §3.8.2.1.2];
 * - SUBSCRIBE or UNSUBSCRIBE without a topic filter [MQTT-3.8.3-2, MQTT-3.10.3-2; 3.1.1: 3.8.3-3, 3.10.3-2];
 * - a SUBSCRIBE with Subscription Identifier 0 [MQTT 5 §3.8.2.1.2];
 * - a PUBLISH from the client with a Subscription Identifier [MQTT-3.3.4-6];
 * - a QoS 1 or 2 PUBLISH with packet identifier 0 [MQTT-2.3.1-1];
 * - a PUBLISH with an empty topic name and no Topic Alias [MQTT 5 §3.3.2.3.4; 3.1.1: MQTT-4.7.3-1].
 *
 * CONNECT is checked by its handler (a refused CONNECT gets a CONNACK, not a DISCONNECT).
 */
export function protocolProblem(packet: Packet): string | null {
  const repeated = repeatedProperty((packet as { properties?: object }).properties);
  if (repeated) return repeated;
  switch (packet.cmd) {
    case 'connect':
      return repeatedProperty(packet.will?.properties, 'will ');
    case 'subscribe':
      if (packet.properties?.subscriptionIdentifier === 0) return 'Subscription Identifier 0 [MQTT 5 §3.8.2.1.2]';
      return packet.subscriptions.length === 0 ? 'SUBSCRIBE without a topic filter [MQTT-3.8.3-2]' : null;
    case 'unsubscribe':
      return packet.unsubscriptions.length === 0 ? 'UNSUBSCRIBE without a topic filter [MQTT-3.10.3-2]' : null;
    case 'publish':
      if (packet.qos > 0 && !packet.messageId) return `QoS ${packet.qos} PUBLISH with packet identifier 0 [MQTT-2.3.1-1]`;
      if (packet.properties?.subscriptionIdentifier !== undefined) return 'PUBLISH from a client with a Subscription Identifier [MQTT-3.3.4-6]';
      return packet.topic === '' && packet.properties?.topicAlias === undefined ? 'PUBLISH with an empty topic name and no Topic Alias [MQTT 5 §3.3.2.3.4]' : null;
    default:
      return null;
  }
}

const MAY_REPEAT = new Set(['userProperties']);

function repeatedProperty(props: object | undefined, where = ''): string | null {
  if (!props) return null;
  // for…in, not Object.entries: this runs for every packet, and allocates nothing.
  for (const name in props) {
    const value = (props as Record<string, unknown>)[name];
    if (Array.isArray(value) && !MAY_REPEAT.has(name)) return `${where}property ${name} given ${value.length} times; it may appear once [MQTT 5 §2.2.2.2]`;
  }
  return null;
}
