import { describe, expect, it } from 'vitest';
import { formatWithDefault } from '../../shared/link';
import { deliveredFormat, publishContentType, publishFormat, responseTopicProblem } from './format';

/** What the platform does between a PUBLISH and its delivery: the stored content type and format (the actor substitutes the channel's default for ''). */
function throughPlatform(contentType: string | undefined, pfi: boolean | undefined, channelDefault: string): { contentType: string; format?: number } {
  const stored = publishContentType(contentType, pfi);
  const format = publishFormat(contentType, pfi);
  if (stored !== '') return format === undefined ? { contentType: stored } : { contentType: stored, format };
  const f = formatWithDefault(format, channelDefault);
  return f === undefined ? { contentType: channelDefault } : { contentType: channelDefault, format: f };
}

describe('Payload Format Indicator and Content Type, publisher to subscriber', () => {
  const contentTypes = [undefined, 'text/plain', 'application/json', 'application/octet-stream', 'application/senml+json'];
  const indicators = [undefined, false, true];
  const defaults = ['application/octet-stream', 'application/senml+json', 'text/plain; charset=utf-8'];
  const cases = contentTypes.flatMap((ct) => indicators.flatMap((pfi) => defaults.map((d) => [ct, pfi, d] as const)));

  it.each(cases)('Content Type %s, indicator %s, channel default %s: delivered unaltered [MQTT-3.3.2-4, MQTT-3.3.2-20]', (ct, pfi, channelDefault) => {
    const d = throughPlatform(ct, pfi, channelDefault);
    const expected = { ...(ct !== undefined ? { contentType: ct } : {}), ...(pfi !== undefined ? { payloadFormatIndicator: pfi } : {}) };
    expect(deliveredFormat(d, () => true)).toEqual(expected);
  });

  it('the most common publish (no property, a channel with the default content type) carries no format at all', () => {
    expect(throughPlatform(undefined, undefined, 'application/octet-stream')).toEqual({ contentType: 'application/octet-stream' });
  });

  it("what the tester saw: PFI 1 + application/json keeps PFI; text/plain alone gets no PFI; PFI 1 alone gets no Content Type", () => {
    expect(deliveredFormat(throughPlatform('application/json', true, 'application/octet-stream'), () => true)).toEqual({ contentType: 'application/json', payloadFormatIndicator: true });
    expect(deliveredFormat(throughPlatform('text/plain', undefined, 'application/octet-stream'), () => true)).toEqual({ contentType: 'text/plain' });
    expect(deliveredFormat(throughPlatform(undefined, true, 'application/octet-stream'), () => true)).toEqual({ payloadFormatIndicator: true });
  });

  it('without format (HTTP, CoAP, WebSocket, stored before link v4): the stored type, none for octet-stream, and PFI 1 for UTF-8 text', () => {
    expect(deliveredFormat({ contentType: 'application/json' }, () => true)).toEqual({ contentType: 'application/json' });
    expect(deliveredFormat({ contentType: 'text/plain' }, () => true)).toEqual({ contentType: 'text/plain', payloadFormatIndicator: true });
    expect(deliveredFormat({ contentType: 'text/plain' }, () => false)).toEqual({ contentType: 'text/plain' });
    expect(deliveredFormat({ contentType: 'application/octet-stream' }, () => true)).toEqual({});
  });
});

describe('Response Topic', () => {
  it.each([
    ['channels/c1/messages', null],
    ['channels/c1/messages/replies/dev-1', null],
    ['channels/c1/messages/+/x', 'protocol'],
    ['channels/c1/#', 'protocol'],
    ['', 'protocol'],
    ['replies/dev-1', 'refused'],
    ['channels/c1/other', 'refused'],
    ['channels/c1/messages/a//b', 'refused'],
  ])('%j: %s', (topic, expected) => {
    const p = responseTopicProblem(topic);
    expect(p === null ? null : p.protocol ? 'protocol' : 'refused').toBe(expected);
  });
});
