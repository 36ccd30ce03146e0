import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../shared/testing/prng';
import { parseInstant, parseQuery } from './params';

describe('from/to instants', () => {
  it('read ms, ISO-8601 date-times with any zone form, and dates (UTC midnight)', () => {
    const at = Date.UTC(2026, 11, 2, 2, 3, 50);
    expect(parseInstant(String(at))).toBe(at);
    expect(parseInstant('2026-12-02T02:03:50Z')).toBe(at);
    expect(parseInstant('2026-12-02t02:03:50z')).toBe(at);
    expect(parseInstant('2026-12-02 02:03:50Z')).toBe(at);
    expect(parseInstant('2026-12-02T03:03:50+01:00')).toBe(at);
    expect(parseInstant('2026-12-02T03:03:50+0100')).toBe(at);
    expect(parseInstant('2026-12-02T03:03:50+01')).toBe(at);
    expect(parseInstant('2026-12-01T21:03:50-05:00')).toBe(at);
    expect(parseInstant('2026-12-02T02:03Z')).toBe(at - 50_000);
    expect(parseInstant('2026-12-02T02:03:50.123456789Z')).toBe(at + 123);
    expect(parseInstant('2026-12-02')).toBe(Date.UTC(2026, 11, 2));
  });

  it('read a zone whose + a URL query turned into a space (curl "?from=2026-12-02T03:03:50+01:00")', () => {
    const at = Date.UTC(2026, 11, 2, 2, 3, 50);
    for (const typed of ['2026-12-02T03:03:50+01:00', '2026-12-02T03:03:50+0100', '2026-12-02T03:03:50+01', '2026-12-02 03:03:50+01:00']) {
      const query = new URL(`http://x/?from=${typed}`).searchParams.get('from')!;
      expect(query, typed).toContain(' ');
      expect(parseInstant(query), typed).toBe(at);
    }
  });

  it('refuse what names no instant: no zone, impossible dates and times, other text', () => {
    for (const s of ['', '2026-12-02T02:03:50', '2026-02-31', '2026-02-31T00:00:00Z', '2026-12-02T25:00:00Z', '2026-12-02T02:60:00Z', '2026-13-01', 'yesterday', '1e12', '-5', '2026-12-02T02:03:50+1', '12345678901234567']) {
      expect(parseInstant(s), s).toBeNaN();
    }
  });

  it('answer a number or NaN for any input, never throw', () => {
    const r = mulberry32(11);
    const alphabet = '0123456789-:TZz+. tx';
    for (let i = 0; i < 20_000; i++) {
      const n = Math.floor(r() * 30);
      let s = '';
      for (let k = 0; k < n; k++) s += alphabet[Math.floor(r() * alphabet.length)];
      const v = parseInstant(s);
      expect(typeof v).toBe('number');
    }
    // Mutations of a valid instant: valid ones agree with Date.parse where it takes them.
    for (let i = 0; i < 5_000; i++) {
      const base = '2026-12-02T03:03:50.5+01:00'.split('');
      base[Math.floor(r() * base.length)] = alphabet[Math.floor(r() * alphabet.length)]!;
      const s = base.join('');
      const v = parseInstant(s);
      if (!Number.isNaN(v) && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d[+-]\d{2}:\d{2}$/.test(s)) expect(v).toBe(Date.parse(s));
    }
  });
});

describe('SenML value filter', () => {
  const v = (value: string) => parseQuery(new URL(`http://x/?format=senml&v=${value}`)).v;
  it('reads decimal numbers', () => {
    for (const [s, n] of [['21.5', 21.5], ['-3', -3], ['0', 0], ['1e3', 1000], ['.5', 0.5], ['%2B2', 2], ['+21', 21]] as const) expect(v(s), s).toBe(n);
  });
  it('refuses what is not one rather than reading it as some number (an empty v is not 0)', () => {
    for (const s of ['', '%20', 'abc', '0x10', 'Infinity', '1e999', '1,5']) expect(() => v(s), s).toThrow(/invalid query: v:/);
  });
});
