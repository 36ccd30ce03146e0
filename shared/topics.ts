/**
 * Message addresses, the same in every protocol (BRIEF "Addresses"):
 *
 *   HTTP / WebSocket / CoAP path   /channels/{id}/messages[/{subtopic…}]
 *   MQTT topic                     channels/{id}/messages[/{subtopic…}]
 *
 * A subtopic is zero or more `/`-separated segments. The channel root (no subtopic) is the
 * empty string. Rules, after MQTT 3.1.1 §4.7 / MQTT 5 §4.7:
 *  - every segment is non-empty (so no leading, trailing or doubled `/`);
 *  - publishing: no wildcards at all [MQTT-3.3.2-2];
 *  - subscribing: `+` matches exactly one segment and must be a whole segment [MQTT-4.7.1-3],
 *    `#` matches any number of segments (including none) and must be the last, whole
 *    segment [MQTT-4.7.1-2];
 *  - no U+0000 [MQTT-1.5.3-2] nor other C0/DEL control characters (they break logs and URLs).
 *
 * Decision — a subscription without a subtopic gets every message of the channel, as in
 * Mainflux (which subscribed to NATS `channels.{id}.>`): `subscriptionFilter('')` is `#`.
 * `matchSubtopic` itself is plain MQTT: the filter `''` matches only the channel root, and
 * `a/#` also matches `a` (MQTT 4.7.1.2: "#" matches the parent level too).
 */

export type TopicMode = 'publish' | 'subscribe';

export interface Address {
  channel: string;
  /** '' for the channel root; for subscriptions it may contain `+` and `#`. */
  subtopic: string;
}

export class TopicError extends Error {
  constructor(
    readonly code: 'invalid_channel' | 'invalid_subtopic' | 'invalid_address',
    message: string,
  ) {
    super(message);
    this.name = 'TopicError';
  }
}

export const MAX_SUBTOPIC_LENGTH = 1024;
export const MAX_SUBTOPIC_SEGMENTS = 32;
export const MAX_CHANNEL_ID_LENGTH = 128;

// Channel ids are UUIDs today; accept RFC 3986 unreserved characters so an id is valid unescaped
// in a URL path, an MQTT topic level, a CoAP Uri-Path option and an R2 key.
const CHANNEL_ID = /^[A-Za-z0-9_~-][A-Za-z0-9._~-]*$/;
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Why `channel` is not a valid channel id, or null when it is. */
export function channelIdProblem(channel: string): string | null {
  if (channel.length === 0) return 'channel id is empty';
  if (channel.length > MAX_CHANNEL_ID_LENGTH) return `channel id is longer than ${MAX_CHANNEL_ID_LENGTH} characters`;
  if (!CHANNEL_ID.test(channel)) return 'channel id may only contain letters, digits and . _ ~ -';
  return null;
}

/** Why `subtopic` is not valid for `mode`, or null when it is. */
export function subtopicProblem(subtopic: string, mode: TopicMode): string | null {
  if (subtopic === '') return null;
  if (subtopic.length > MAX_SUBTOPIC_LENGTH) return `subtopic is longer than ${MAX_SUBTOPIC_LENGTH} characters`;
  if (CONTROL.test(subtopic)) return 'subtopic contains a control character';
  const segments = subtopic.split('/');
  if (segments.length > MAX_SUBTOPIC_SEGMENTS) return `subtopic has more than ${MAX_SUBTOPIC_SEGMENTS} segments`;
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i] ?? '';
    if (s === '') return `subtopic segment ${i + 1} is empty`;
    const hasWildcard = s.includes('+') || s.includes('#');
    if (!hasWildcard) continue;
    if (mode === 'publish') return 'wildcards + and # are only allowed when subscribing';
    if (s !== '+' && s !== '#') return `wildcard in segment ${i + 1} must be the whole segment`;
    if (s === '#' && i !== segments.length - 1) return '# must be the last segment';
  }
  return null;
}

export function checkSubtopic(subtopic: string, mode: TopicMode): string {
  const problem = subtopicProblem(subtopic, mode);
  if (problem) throw new TopicError('invalid_subtopic', problem);
  return subtopic;
}

export function isWildcardFilter(filter: string): boolean {
  return filter.includes('+') || filter.includes('#');
}

/** The filter a subscription to `subtopic` uses: the channel root means "everything". */
export function subscriptionFilter(subtopic: string): string {
  return subtopic === '' ? '#' : subtopic;
}

/** Core of every address form: already-split, already-decoded segments. */
export function parseSegments(segments: readonly string[], mode: TopicMode): Address {
  const [first, channel, messages, ...rest] = segments;
  if (first !== 'channels' || channel === undefined || messages !== 'messages') {
    throw new TopicError('invalid_address', 'address must be channels/{id}/messages[/{subtopic}]');
  }
  const channelProblem = channelIdProblem(channel);
  if (channelProblem) throw new TopicError('invalid_channel', channelProblem);
  if (rest.some((s) => s.includes('/'))) throw new TopicError('invalid_subtopic', 'a subtopic segment may not contain an encoded /');
  // `channels/x/messages/` has one empty subtopic segment; joining would hide it as the root.
  if (rest.length === 1 && rest[0] === '') throw new TopicError('invalid_subtopic', 'subtopic segment 1 is empty');
  return { channel, subtopic: checkSubtopic(rest.join('/'), mode) };
}

/**
 * `/channels/{id}/messages[/…]` (HTTP, WebSocket). Each segment is percent-decoded (RFC 3986
 * §2.1). In the subtopic an encoded `/` (%2F) separates levels as `/` does: no level can hold a
 * `/`, so nothing is lost, and a client generated from the OpenAPI document — which encodes the
 * `{subtopic}` path parameter's `/` — reaches `lab/temp` too.
 */
export function parseHttpPath(path: string, mode: TopicMode): Address {
  if (!path.startsWith('/')) throw new TopicError('invalid_address', 'path must start with /');
  const raw = path.slice(1).split('/');
  const segments = raw.flatMap((s, i) => {
    let decoded: string;
    try {
      decoded = decodeURIComponent(s);
    } catch {
      throw new TopicError('invalid_address', `malformed percent-encoding in path segment ${JSON.stringify(s)}`);
    }
    return i >= 3 ? decoded.split('/') : [decoded];
  });
  return parseSegments(segments, mode);
}

/** `channels/{id}/messages[/…]` (MQTT topic name or filter; no leading `/`, no decoding). */
export function parseMqttTopic(topic: string, mode: TopicMode): Address {
  return parseSegments(topic.split('/'), mode);
}

export function formatHttpPath({ channel, subtopic }: Address): string {
  const tail = subtopic === '' ? '' : `/${subtopic.split('/').map(encodeURIComponent).join('/')}`;
  return `/channels/${encodeURIComponent(channel)}/messages${tail}`;
}

export function formatMqttTopic({ channel, subtopic }: Address): string {
  return `channels/${channel}/messages${subtopic === '' ? '' : `/${subtopic}`}`;
}

const segmentsOf = (s: string): string[] => (s === '' ? [] : s.split('/'));

/**
 * Does the (valid) subscription `filter` match the (valid, wildcard-free) `subtopic`?
 * MQTT 5 §4.7.1: `+` is one level, `#` is this level and all below, including the parent.
 */
export function matchSubtopic(filter: string, subtopic: string): boolean {
  if (filter === '#') return true;
  if (!isWildcardFilter(filter)) return filter === subtopic;
  const f = segmentsOf(filter);
  const t = segmentsOf(subtopic);
  for (let i = 0; i < f.length; i++) {
    const p = f[i];
    if (p === '#') return true;
    if (i >= t.length) return false;
    if (p !== '+' && p !== t[i]) return false;
  }
  return f.length === t.length;
}

/** A matcher for one filter, for fan-out loops that test the same filter against many messages. */
export function compileFilter(filter: string): (subtopic: string) => boolean {
  if (filter === '#') return () => true;
  if (!isWildcardFilter(filter)) return (s) => s === filter;
  return (s) => matchSubtopic(filter, s);
}
