import type { ISubscribePacket, ISubscription, IUnsubscribePacket } from 'mqtt-packet';
import type { Delivery, Subscription } from '../../platform/types';
import type { Client, LocalSub } from '../client';
import { RC } from '../codes';
import { parseTopicFilter, TopicProblem, type TopicFilter } from '../topics';

type Qos = 0 | 1 | 2;

/** Channels a filter covers for this client, or a refusal reason code. */
async function channelsOf(client: Client, f: TopicFilter): Promise<string[] | number> {
  const principal = client.principal!;
  // `channels/+/messages/…`: every channel this client may subscribe to, as of now.
  if (f.channel === '+') return client.ctx.platform.channelsFor(principal, 'messages:subscribe');
  const [d] = await client.ctx.platform.authorize(principal, [{ channel: f.channel, action: 'messages:subscribe' }]);
  return d?.allowed ? [f.channel] : RC.NotAuthorized;
}

/** Shared subscription: one platform subscription per (group, filter) on this bridge, deliveries round-robin. */
async function joinShare(client: Client, f: TopicFilter, key: string, channels: string[], qos: Qos): Promise<Subscription[]> {
  const shares = client.ctx.shares;
  let share = shares.get(key);
  if (!share) {
    const created = { members: [] as Client[], next: 0, handles: [] as Subscription[], qos: new Map<Client, Qos>() };
    shares.set(key, created);
    share = created;
    const pick = (d: Delivery) => {
      if (d.retained) return; // [MQTT-4.8.2-?] retained messages are not sent for shared subscriptions
      const live = created.members.filter((m) => !m.closed);
      if (live.length === 0) return;
      const m = live[created.next++ % live.length]!;
      m.deliver(d, created.qos.get(m) ?? 0);
    };
    for (const channel of channels) created.handles.push(await client.ctx.platform.subscribe({ channel, filter: f.filter }, pick));
  }
  share.members.push(client);
  share.qos.set(client, qos);
  const s = share;
  return [
    {
      close: () => {
        s.members = s.members.filter((m) => m !== client);
        if (s.members.length === 0) {
          for (const h of s.handles) h.close();
          shares.delete(key);
        }
      },
    },
  ];
}

async function subscribeOne(client: Client, sub: ISubscription, held: (() => void)[]): Promise<number> {
  const v5 = client.version === 5;
  let f: TopicFilter;
  try {
    f = parseTopicFilter(sub.topic);
  } catch (e) {
    client.ctx.log(`client ${client.id}: bad filter ${sub.topic}: ${e instanceof TopicProblem ? e.message : String(e)}`);
    return v5 ? RC.TopicFilterInvalid : RC.UnspecifiedError;
  }
  if (f.share && !v5) return RC.UnspecifiedError;
  if (!client.subs.has(sub.topic) && client.subs.size >= client.ctx.limits.maxSubscriptions) return v5 ? RC.QuotaExceeded : RC.UnspecifiedError;
  const channels = await channelsOf(client, f);
  if (typeof channels === 'number') return v5 ? channels : RC.UnspecifiedError;
  const qos = Math.min(sub.qos, 2) as Qos;
  // [MQTT-3.8.4-3] a subscription with an existing filter replaces it.
  const old = client.subs.get(sub.topic);
  if (old) for (const h of old.handles) h.close();

  const noLocal = v5 && sub.nl === true;
  const skipRetained = v5 && sub.rh === 2; // Retain Handling 2: no retained messages at subscribe
  // Deliveries that arrive before the SUBACK is written are held and flushed right after it.
  let buffer: Delivery[] | null = [];
  const onMessage = (d: Delivery) => {
    if (d.retained && skipRetained) return;
    if (buffer) buffer.push(d);
    else client.deliver(d, qos);
  };
  held.push(() => {
    const b = buffer ?? [];
    buffer = null;
    for (const d of b) client.deliver(d, qos);
  });
  let handles: Subscription[];
  if (f.share) handles = await joinShare(client, f, `${f.share}\u0000${sub.topic}`, channels, qos);
  else {
    handles = [];
    for (const channel of channels) {
      handles.push(await client.ctx.platform.subscribe({ channel, filter: f.filter, ...(noLocal ? { noLocal: client.publisherId } : {}) }, onMessage));
    }
  }
  const local: LocalSub = { topicFilter: sub.topic, qos, noLocal, handles, ...(f.share ? { share: f.share } : {}) };
  client.subs.set(sub.topic, local);
  return qos;
}

export async function handleSubscribe(client: Client, packet: ISubscribePacket): Promise<void> {
  const held: (() => void)[] = [];
  const granted: number[] = [];
  for (const sub of packet.subscriptions) {
    try {
      granted.push(await subscribeOne(client, sub, held));
    } catch (e) {
      client.ctx.log(`client ${client.id}: subscribe ${sub.topic} failed: ${e instanceof Error ? e.message : String(e)}`);
      granted.push(client.version === 5 ? RC.ServerUnavailable : RC.UnspecifiedError);
    }
  }
  if (client.closed) return;
  // [MQTT-3.8.4-1/5] one SUBACK, a return code per filter, in order.
  client.send({ cmd: 'suback', messageId: packet.messageId, granted });
  for (const flush of held) flush();
}

export function handleUnsubscribe(client: Client, packet: IUnsubscribePacket): void {
  const codes: number[] = [];
  for (const topic of packet.unsubscriptions) {
    const sub = client.subs.get(topic);
    if (sub) {
      for (const h of sub.handles) h.close();
      client.subs.delete(topic);
    }
    codes.push(sub ? RC.Success : RC.NoSubscriptionExisted);
  }
  // [MQTT-3.10.4-4] UNSUBACK even when nothing matched; v5 carries a code per filter.
  client.send(client.version === 5 ? { cmd: 'unsuback', messageId: packet.messageId, granted: codes } : { cmd: 'unsuback', messageId: packet.messageId, granted: [] });
}
