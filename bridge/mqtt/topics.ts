import { channelIdProblem, formatMqttTopic, parseMqttTopic, subtopicProblem, TopicError, type Address } from '../../shared/topics';

/**
 * MQTT topic names and filters ↔ Edgeflux addresses (docs/mqtt.md "Topics"). The topic space is
 * `channels/{id}/messages[/{subtopic}]`; filters keep MQTT semantics over that space:
 *  - `channels/{id}/messages` is the channel root only; `channels/{id}/messages/#` every message of
 *    the channel (`#` includes the parent level [MQTT-4.7.1-2]); `channels/{id}/#` the same;
 *  - `+` in the channel level (`channels/+/messages/…`) spans every channel the client may read,
 *    as `#`, `channels/#` and `channels/+/#` do: resolved with `channelsFor` at SUBSCRIBE time;
 *  - `$share/{group}/{filter}` is a shared subscription [MQTT-4.8.2-1/2];
 *  - anything else matches no topic Edgeflux has, and is refused as an invalid filter.
 */

export interface TopicFilter {
  /** A channel id, or '+' for every channel the client may subscribe to. */
  channel: string;
  /** Subtopic filter as the platform takes it: '' the root only, '#' everything, '+' one level. */
  filter: string;
  /** `$share/{group}/…`. */
  share?: string;
}

export class TopicProblem extends Error {}

/** A PUBLISH topic name. Throws TopicProblem. */
export function parseTopicName(topic: string): Address {
  try {
    return parseMqttTopic(topic, 'publish');
  } catch (e) {
    throw new TopicProblem(e instanceof TopicError ? e.message : 'invalid topic');
  }
}

/** Wildcards in a topic name are a protocol violation, not just an unknown address [MQTT-3.3.2-2]. */
export const hasWildcard = (topic: string): boolean => topic.includes('+') || topic.includes('#');

function checkSyntax(levels: string[]): void {
  // [MQTT-4.7.1-2] `#` is a whole level and the last; [MQTT-4.7.1-3] `+` is a whole level.
  levels.forEach((l, i) => {
    if (l.includes('#') && (l !== '#' || i !== levels.length - 1)) throw new TopicProblem('# must be the last, whole level');
    if (l.includes('+') && l !== '+') throw new TopicProblem('+ must be a whole level');
  });
}

/** A SUBSCRIBE/UNSUBSCRIBE topic filter. Throws TopicProblem. */
export function parseTopicFilter(raw: string): TopicFilter {
  if (raw.length === 0) throw new TopicProblem('empty topic filter [MQTT-4.7.3-1]');
  if (raw.includes('\u0000')) throw new TopicProblem('topic filter contains U+0000');
  let text = raw;
  let share: string | undefined;
  if (raw.startsWith('$share/')) {
    const [, group, ...rest] = raw.split('/');
    // [MQTT-4.8.2-1/2] ShareName: at least one character, no '/', '+' or '#', then '/' and a filter.
    if (!group || group.includes('+') || group.includes('#') || rest.length === 0 || rest.join('/') === '') {
      throw new TopicProblem('a shared subscription is $share/{group}/{filter}');
    }
    share = group;
    text = rest.join('/');
  }
  const levels = text.split('/');
  checkSyntax(levels);
  const withShare = (channel: string, filter: string): TopicFilter => ({ channel, filter, ...(share !== undefined ? { share } : {}) });
  const [l0, l1, l2, ...rest] = levels;
  // `#` at any of the first three levels covers every message below it.
  if (l0 === '#') return withShare('+', '#');
  if (l0 !== 'channels' && l0 !== '+') throw new TopicProblem('topic filters start with channels/ (topics beginning with $ are not matched by wildcards [MQTT-4.7.2-1])');
  if (l1 === undefined || l2 === undefined) {
    if (l1 === '#') return withShare('+', '#');
    throw new TopicProblem('filter must be channels/{id|+}/messages[/{subtopic filter}]');
  }
  if (l1 !== '+') {
    const problem = channelIdProblem(l1);
    if (problem) throw new TopicProblem(problem);
  }
  if (l2 === '#') return withShare(l1, '#');
  if (l2 !== 'messages' && l2 !== '+') throw new TopicProblem('the third level of a filter is messages');
  const sub = rest.join('/');
  const problem = subtopicProblem(sub, 'subscribe');
  if (problem || (rest.length > 0 && sub === '')) throw new TopicProblem(problem ?? 'empty subtopic level');
  return withShare(l1, sub);
}

export const topicOf = (channel: string, subtopic: string): string => formatMqttTopic({ channel, subtopic });
