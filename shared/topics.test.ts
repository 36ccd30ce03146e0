import { describe, expect, it } from 'vitest';
import {
  TopicError,
  channelIdProblem,
  compileFilter,
  formatHttpPath,
  formatMqttTopic,
  matchSubtopic,
  parseHttpPath,
  parseMqttTopic,
  subscriptionFilter,
  subtopicProblem,
} from './topics';

describe('subtopic validation', () => {
  const cases: [subtopic: string, publish: boolean, subscribe: boolean][] = [
    ['', true, true],
    ['a', true, true],
    ['a/b/c', true, true],
    ['temp.room-1/x_y~z', true, true],
    ['a//b', false, false],
    ['/a', false, false],
    ['a/', false, false],
    ['+', false, true],
    ['a/+/c', false, true],
    ['a/+', false, true],
    ['#', false, true],
    ['a/#', false, true],
    ['+/#', false, true],
    ['a/#/b', false, false],
    ['a+', false, false],
    ['a/b#', false, false],
    ['#/a', false, false],
    ['a\u0000b', false, false],
    ['a\nb', false, false],
    ['x'.repeat(1025), false, false],
    [Array.from({ length: 33 }, () => 's').join('/'), false, false],
  ];
  it.each(cases)('%j publish=%s subscribe=%s', (subtopic, publish, subscribe) => {
    expect(subtopicProblem(subtopic, 'publish') === null).toBe(publish);
    expect(subtopicProblem(subtopic, 'subscribe') === null).toBe(subscribe);
  });
});

describe('matchSubtopic (MQTT 5 §4.7)', () => {
  const cases: [filter: string, subtopic: string, match: boolean][] = [
    ['a', 'a', true],
    ['a', 'b', false],
    ['a', 'a/b', false],
    ['a/b', 'a', false],
    ['', '', true],
    ['', 'a', false],
    ['#', '', true],
    ['#', 'a/b/c', true],
    ['a/#', 'a', true], // # matches the parent level too
    ['a/#', 'a/b', true],
    ['a/#', 'a/b/c', true],
    ['a/#', 'b', false],
    ['a/#', 'ab', false],
    ['+', 'a', true],
    ['+', '', false],
    ['+', 'a/b', false],
    ['a/+', 'a/b', true],
    ['a/+', 'a', false],
    ['a/+', 'a/b/c', false],
    ['+/b', 'a/b', true],
    ['+/b', 'a/c', false],
    ['+/+', 'a/b', true],
    ['+/#', 'a', true],
    ['+/#', '', false],
    ['a/+/c/#', 'a/x/c', true],
    ['a/+/c/#', 'a/x/d', false],
  ];
  it.each(cases)('%j vs %j → %s', (filter, subtopic, match) => {
    expect(matchSubtopic(filter, subtopic)).toBe(match);
    expect(compileFilter(filter)(subtopic)).toBe(match);
  });

  it('a subscription without subtopic means every message, root included', () => {
    const f = subscriptionFilter('');
    expect(f).toBe('#');
    for (const s of ['', 'a', 'a/b']) expect(matchSubtopic(f, s)).toBe(true);
    expect(subscriptionFilter('a/+')).toBe('a/+');
  });
});

describe('addresses', () => {
  it.each([
    ['/channels/c1/messages', 'publish', { channel: 'c1', subtopic: '' }],
    ['/channels/c1/messages/a/b', 'publish', { channel: 'c1', subtopic: 'a/b' }],
    ['/channels/c1/messages/a%20b/c', 'publish', { channel: 'c1', subtopic: 'a b/c' }],
    ['/channels/c1/messages/a/%2B', 'subscribe', { channel: 'c1', subtopic: 'a/+' }],
    ['/channels/c1/messages/a/%23', 'subscribe', { channel: 'c1', subtopic: 'a/#' }],
    // An encoded / separates levels too (a generated client encodes the {subtopic} parameter's /).
    ['/channels/c1/messages/a%2Fb', 'publish', { channel: 'c1', subtopic: 'a/b' }],
    ['/channels/c1/messages/a%2fb/c', 'subscribe', { channel: 'c1', subtopic: 'a/b/c' }],
  ] as const)('HTTP %s (%s)', (path, mode, expected) => {
    expect(parseHttpPath(path, mode)).toEqual(expected);
  });

  it.each([
    ['/channels/c1/messages/a/+', 'publish', 'invalid_subtopic'],
    ['/channels/c1/messages/a%2F%2Fb', 'publish', 'invalid_subtopic'],
    ['/channels/c1/messages/a%2F', 'publish', 'invalid_subtopic'],
    ['/channels/a%2Fb/messages', 'publish', 'invalid_channel'],
    ['/channels/c1/messages/', 'publish', 'invalid_subtopic'],
    ['/channels/c1/messages//a', 'publish', 'invalid_subtopic'],
    ['/channels/c1/message', 'publish', 'invalid_address'],
    ['/things/c1/messages', 'publish', 'invalid_address'],
    ['/channels//messages', 'publish', 'invalid_channel'],
    ['/channels/a%20b/messages', 'publish', 'invalid_channel'],
    ['/channels/c1/messages/%E0%A4%A', 'publish', 'invalid_address'],
    ['channels/c1/messages', 'publish', 'invalid_address'],
  ] as const)('HTTP %s (%s) → %s', (path, mode, code) => {
    expect(() => parseHttpPath(path, mode)).toThrow(TopicError);
    try {
      parseHttpPath(path, mode);
    } catch (e) {
      expect((e as TopicError).code).toBe(code);
    }
  });

  it.each([
    ['channels/c1/messages', 'publish', { channel: 'c1', subtopic: '' }],
    ['channels/c1/messages/a/b', 'publish', { channel: 'c1', subtopic: 'a/b' }],
    ['channels/c1/messages/#', 'subscribe', { channel: 'c1', subtopic: '#' }],
    ['channels/c1/messages/+/temp', 'subscribe', { channel: 'c1', subtopic: '+/temp' }],
  ] as const)('MQTT %s (%s)', (topic, mode, expected) => {
    expect(parseMqttTopic(topic, mode)).toEqual(expected);
  });

  it.each([
    ['channels/c1/messages/#', 'publish'],
    ['channels/c1/messages/', 'subscribe'],
    ['/channels/c1/messages', 'subscribe'],
    ['channels/+/messages', 'subscribe'],
    ['channels/c1/messages/a/#/b', 'subscribe'],
  ] as const)('MQTT %s (%s) is refused', (topic, mode) => {
    expect(() => parseMqttTopic(topic, mode)).toThrow(TopicError);
  });

  it('formats back to the same address in both forms', () => {
    const a = { channel: 'c1', subtopic: 'a b/c' };
    expect(parseHttpPath(formatHttpPath(a), 'publish')).toEqual(a);
    expect(parseMqttTopic(formatMqttTopic(a), 'publish')).toEqual(a);
    expect(formatMqttTopic({ channel: 'c1', subtopic: '' })).toBe('channels/c1/messages');
    expect(formatHttpPath({ channel: 'c1', subtopic: '' })).toBe('/channels/c1/messages');
  });

  it('accepts UUID channel ids and refuses others', () => {
    expect(channelIdProblem(crypto.randomUUID())).toBeNull();
    expect(channelIdProblem('')).not.toBeNull();
    expect(channelIdProblem('a/b')).not.toBeNull();
    expect(channelIdProblem('x'.repeat(129))).not.toBeNull();
  });
});
