import type { Client, Will } from '../client';
import { parseTopicName } from '../topics';

/**
 * Publishes a client's will [MQTT-3.1.2-8], after the v5 Will Delay Interval [MQTT-3.1.3-9];
 * a reconnect with the same client id within the delay cancels it.
 */
export function publishWill(client: Client, will: Will): void {
  const { ctx } = client;
  const principal = client.principal;
  if (!principal) return;
  const go = () => {
    const again = ctx.clients.get(client.id);
    if (will.delay > 0 && again && again !== client && !again.closed) return; // reconnected in time
    let address;
    try {
      address = parseTopicName(will.topic);
    } catch {
      return;
    }
    const props = will.properties;
    void ctx.platform
      .publish({
        channel: address.channel,
        subtopic: address.subtopic,
        publisher: principal.id,
        protocol: 'mqtt',
        contentType: props?.contentType ?? 'application/octet-stream',
        payload: new Uint8Array(will.payload),
        retain: will.retain,
        ...(props?.userProperties ? { userProperties: props.userProperties } : {}),
        ...(props?.messageExpiryInterval !== undefined ? { messageExpiry: props.messageExpiryInterval } : {}),
      })
      .then((o) => {
        if (!o.ok) ctx.log(`will of ${client.id} not stored: ${o.status} ${o.message}`);
      });
  };
  if (will.delay > 0) setTimeout(go, will.delay * 1000).unref();
  else go();
}
