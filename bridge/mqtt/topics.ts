import { channelIdProblem, formatMqttTopic, subtopicProblem } from '../../shared/topics';

/**
 * MQTT topic names and filters ↔ Edgeflux addresses. `channels/{id}/messages[/{subtopic}]`, with
 * MQTT semantics for filters: `channels/{id}/messages` is the channel root only,
 * `channels/{id}/messages/#` is every message of the channel (`#` includes the parent level,
 * [MQTT-4.7.1-2]), and `channels/+/messages/…` spans every channel the client may use.
 */

export interface TopicName {
  channel: string;
  subtopic: string;
}

export interface TopicFilter {
  /** A channel id, or '+' for every channel the client may subscribe to. */
  channel: string;
  /** Subtopic filter as the channel actor understands it ('' = root only, '#' = everything). */
  filter: string;
  /** `$share/{group}/…` [MQTT-4.8.2]. */
  share?: string;
}

export class TopicProblem extends Error {}

export function parseTopicName(topic: string): TopicName {
  if (topic.includes('+') || topic.includes('#')) throw new TopicProblem('a topic name may not contain wildcards [MQTT-3.3.2-2]');
  const [a, channel, m, ...rest] = topic.split('/');
  if (a !== 'channels' || channel === undefined || m !== 'messages') throw new TopicProblem('topic must be channels/{id}/messages[/{subtopic}]');
  const cp = channelIdProblem(channel);
  if (cp) throw new TopicProblem(cp);
  const subtopic = rest.join('/');
  const sp = subtopicProblem(subtopic, 'publish');
  if (sp) throw new TopicProblem(sp);
  return { channel, subtopic };
}

export function parseTopicFilter(raw: string): TopicFilter {
  let filter = raw;
  let share: string | undefined;
  if (raw.startsWith('$share/')) {
    const [, group, ...rest] = raw.split('/');
    // [MQTT-4.8.2-1] ShareName: at least one character, no '/', '+' or '#'.
    if (!group || group.includes('+') || group.includes('#') || rest.length === 0) throw new TopicProblem('shared subscription must be $share/{group}/{filter}');
    share = group;
    filter = rest.join('/');
  }
  const [a, channel, m, ...rest] = filter.split('/');
  // `channels/#` and `#`: everything the client may read, i.e. `channels/+/messages/#`.
  if (filter === '#' || filter === 'channels/#') return { channel: '+', filter: '#', ...(share ? { share } : {}) };
  if (a !== 'channels' || channel === undefined || (m !== 'messages' && m !== '#' && m !== '+')) throw new TopicProblem('filter must be channels/{id|+}/messages[/{subtopic filter}]');
  if (m === '#') return { channel, filter: '#', ...(share ? { share } : {}) };
  if (m === '+') throw new TopicProblem('the third level must be messages');
  if (channel !== '+') {
    const cp = channelIdProblem(channel);
    if (cp) throw new TopicProblem(cp);
  }
  const sub = rest.join('/');
  if (rest.length > 0) {
    const sp = subtopicProblem(sub, 'subscribe');
    if (sp) throw new TopicProblem(sp);
  }
  return { channel, filter: sub, ...(share ? { share } : {}) };
}

export const topicOf = (channel: string, subtopic: string): string => formatMqttTopic({ channel, subtopic });
