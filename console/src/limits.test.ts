import { describe, expect, it } from 'vitest';
import type { ChannelLimits } from '../../sdk';
import { DEFAULT_CONFIG } from '../../objects/channel/config';
import { bytes, draftOf, OTHER, patchOf, retention, settingNamed, SETTINGS } from './limits';

const defaults: ChannelLimits = DEFAULT_CONFIG;

describe("a channel's settings in the console", () => {
  it('sends nothing when nothing changed', () => {
    expect(patchOf(defaults, draftOf(defaults))).toEqual({});
    const odd = { ...defaults, defaultContentType: 'application/vnd.acme+json; v=2', retentionDays: 0.5 };
    expect(patchOf(odd, draftOf(odd))).toEqual({});
  });

  it('sends only what changed, a rate or window whole', () => {
    const d = draftOf(defaults);
    d.contentType = 'application/senml+json';
    d.keepForever = false;
    d.days = '30';
    d.numbers['channelRate.burst'] = '50';
    d.numbers['subscriberWindow.messages'] = '10';
    expect(patchOf(defaults, d)).toEqual({
      defaultContentType: 'application/senml+json',
      retentionDays: 30,
      channelRate: { perSecond: 1000, burst: 50 },
      subscriberWindow: { bytes: 4 * 1024 * 1024, messages: 10 },
    });
  });

  it('takes a typed content type, and keeping forever is 0', () => {
    const l = { ...defaults, retentionDays: 7 };
    const d = draftOf(l);
    expect(d).toMatchObject({ keepForever: false, days: '7', contentType: 'application/octet-stream' });
    d.contentType = OTHER;
    d.otherType = ' application/cbor ';
    d.keepForever = true;
    expect(patchOf(l, d)).toEqual({ defaultContentType: 'application/cbor', retentionDays: 0 });
  });

  it('leaves checking values to the API, but refuses an empty box', () => {
    const d = draftOf(defaults);
    d.keepForever = false;
    d.days = '0.01'; // below an hour: the API's 422 says so
    expect(patchOf(defaults, d)).toEqual({ retentionDays: 0.01 });
    d.days = '';
    expect(() => patchOf(defaults, d)).toThrow('Days to keep messages: give a number');
  });

  it('finds the setting a problem names', () => {
    expect(settingNamed('retentionDays must be 0 (keep every message) or at least an hour (1/24 ≈ 0.0417)')).toBe('retentionDays');
    expect(settingNamed('channelRate.burst must be an integer')).toBe('channelRate.burst');
    expect(settingNamed('invalid body: publisherRate.perSecond: Too small: expected number to be >0')).toBe('publisherRate.perSecond');
    expect(settingNamed('unknown setting foo')).toBeUndefined();
  });

  it('shows values as people read them, every setting of the API', () => {
    expect(bytes(262144)).toBe('262,144 bytes (256 KiB)');
    expect(bytes(1000)).toBe('1,000 bytes');
    expect(retention(0)).toBe('Forever');
    expect(retention(30)).toBe('30 days');
    expect(retention(0.5)).toBe('0.5 days (12 hours)');
    expect(SETTINGS.map((s) => s.key).sort()).toEqual(Object.keys(defaults).sort());
  });
});
