import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../shared/testing/prng';
import { numericPoints, SeriesSet } from './senml';

const msg = (payload: string, contentType = 'application/senml+json', created = 1_790_000_000_000) => ({ payload, contentType, created });

describe('numeric SenML values for the chart', () => {
  it('resolves names, times and units, and skips non-numeric records', () => {
    const points = numericPoints(msg(JSON.stringify([{ bn: 'dev/', bt: 1_790_000_000, n: 'temp', u: 'Cel', v: 21.5 }, { n: 'label', vs: 'x' }, { n: 'hum', t: 2, v: 40 }])));
    expect(points).toEqual([
      { name: 'dev/temp', time: 1_790_000_000, value: 21.5, unit: 'Cel' },
      { name: 'dev/hum', time: 1_790_000_002, value: 40, unit: undefined },
    ]);
  });

  it('gives records without a time the message time', () => {
    expect(numericPoints(msg('[{"n":"t","v":1}]', 'application/senml+json', 1_790_000_000_500))[0]?.time).toBe(1_790_000_000.5);
  });

  it('ignores other content types, base64 payloads and malformed packs', () => {
    expect(numericPoints(msg('[{"n":"t","v":1}]', 'application/json'))).toEqual([]);
    expect(numericPoints({ ...msg('W3sibiI6InQiLCJ2IjoxfV0='), encoding: 'base64' as const })).toEqual([]);
    expect(numericPoints(msg('[{"n":"t","v":"one"}]'))).toEqual([]);
    expect(numericPoints(msg('not json'))).toEqual([]);
  });

  it('never throws on random payloads', () => {
    const rnd = mulberry32(8428);
    const pieces = ['[', ']', '{', '}', ',', ':', '"n"', '"v"', '"bn"', '"bt"', '"t"', '"u"', '"a/"', '1', '-2.5e3', 'null', 'true', '"x"', ' '];
    for (let i = 0; i < 5000; i++) {
      const text = Array.from({ length: Math.floor(rnd() * 30) }, () => pieces[Math.floor(rnd() * pieces.length)]).join('');
      for (const p of numericPoints(msg(text))) expect(Number.isFinite(p.value)).toBe(true);
    }
  });
});

describe('series per name', () => {
  it('keeps each series in time order and at most `cap` points', () => {
    const set = new SeriesSet(3);
    set.add([{ name: 'a', time: 2, value: 20 }, { name: 'a', time: 1, value: 10 }, { name: 'b', time: 1, value: 5 }]);
    set.add([{ name: 'a', time: 3, value: 30 }, { name: 'a', time: 4, value: 40 }]);
    expect(set.series.get('a')).toMatchObject({ t: [2, 3, 4], v: [20, 30, 40] });
    expect(set.points).toBe(4);
  });
});
