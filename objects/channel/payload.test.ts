// What the actor keeps of a SenML payload: the records' JSON, written by hand, against JSON.stringify.
import { describe, expect, it } from 'vitest';
import type { SenmlRecord } from '../../shared/senml';
import { checkPayload, recordsJson } from './payload';

/** The reference: one object per record, keys in the stored order, through JSON.stringify. */
const reference = (records: readonly SenmlRecord[]) =>
  JSON.stringify(records.map((r, i) => ({ i, n: r.name, t: r.time, u: r.unit, v: r.value, vs: r.stringValue, vb: r.boolValue, vd: r.dataValue, s: r.sum, ut: r.updateTime })));

describe('stored SenML records (recordsJson)', () => {
  it('writes exactly the text JSON.stringify writes, over random records', () => {
    let seed = 11;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
    const numbers = [0, -0, 1, -1.5, 21.5, 1e21, 1e-7, 5e-324, Number.MAX_VALUE, -Number.MAX_SAFE_INTEGER, 1_700_000_000.123, 0.1 + 0.2, Infinity, -Infinity, NaN];
    const strings = ['', 'temp', 'dev:1/temp', 'q"\\ \n\t é ✓ 🌡 \u0001 \u2028 \ud800', 'Cel', '%RH'];
    for (let round = 0; round < 2000; round++) {
      const records = Array.from({ length: 1 + Math.floor(rnd() * 4) }, () => {
        const r: SenmlRecord = { name: pick(strings), time: pick(numbers) };
        if (rnd() < 0.5) r.unit = pick(strings);
        const kind = Math.floor(rnd() * 5);
        if (kind === 0) r.value = pick(numbers);
        if (kind === 1) r.stringValue = pick(strings);
        if (kind === 2) r.boolValue = rnd() < 0.5;
        if (kind === 3) r.dataValue = pick(['', 'AQID', 'aGVsbG8']);
        if (rnd() < 0.3) r.sum = pick(numbers);
        if (rnd() < 0.3) r.updateTime = pick(numbers);
        return r;
      });
      const text = recordsJson(records);
      expect(text).toBe(reference(records));
      expect(() => JSON.parse(text)).not.toThrow();
    }
  });

  it('is what a SenML publish keeps: resolved names, times, units and values', () => {
    const payload = new TextEncoder().encode('[{"bn":"dev1/","bt":1700000000,"bu":"Cel","n":"temp","v":21.5},{"n":"on","vb":true,"t":1},{"n":"msg","vs":"hi \\"there\\"","u":""},{"n":"e","s":3,"ut":60}]');
    const checked = checkPayload('application/senml+json', payload, 1_700_000_100_000);
    expect(checked.ok).toBe(true);
    if (!checked.ok) return;
    // In time order (RFC 8428 §4.6), `i` their position in it.
    expect(JSON.parse(checked.records!)).toEqual([
      { i: 0, n: 'dev1/temp', t: 1_700_000_000, u: 'Cel', v: 21.5 },
      { i: 1, n: 'dev1/msg', t: 1_700_000_000, vs: 'hi "there"' },
      { i: 2, n: 'dev1/e', t: 1_700_000_000, u: 'Cel', s: 3, ut: 60 },
      { i: 3, n: 'dev1/on', t: 1_700_000_001, u: 'Cel', vb: true },
    ]);
  });
});
