import { describe, expect, it } from 'vitest';
import { evaluate, httpDate, parseRange } from './ranges';

describe('parseRange (RFC 9110 §14.1)', () => {
  it.each([
    ['bytes=0-0', 10, { start: 0, end: 0 }],
    ['bytes=5-', 10, { start: 5, end: 9 }],
    ['bytes=-3', 10, { start: 7, end: 9 }],
    ['bytes=-30', 10, { start: 0, end: 9 }], // a suffix longer than the payload: all of it
    ['bytes=2-99999999999999999999', 10, { start: 2, end: 9 }], // last past the end (or past 2^53): clamped
    ['BYTES = 1 - 2', 10, { start: 1, end: 2 }],
    ['bytes=-0', 10, 'unsatisfiable'],
    ['bytes=10-', 10, 'unsatisfiable'],
    ['bytes=99999999999999999999-', 10, 'unsatisfiable'],
    ['bytes=0-', 0, 'unsatisfiable'],
    ['bytes=-5', 0, null], // nothing to range over: answered whole
    ['bytes=5-2', 10, null], // last before first: the header is ignored
    ['bytes=0-1,3-4', 10, null], // several ranges: answered whole
    ['items=0-1', 10, null],
    ['bytes=-', 10, null],
    ['bytes=a-b', 10, null],
  ] as const)('%s of %i bytes', (header, size, expected) => {
    expect(parseRange(header, size)).toEqual(expected);
  });
});

describe('httpDate (RFC 9110 §5.6.7)', () => {
  const now = Date.UTC(2026, 11, 2);
  it('reads the three forms, an RFC 850 year no more than 50 years ahead', () => {
    const t = Date.UTC(1994, 10, 6, 8, 49, 37);
    expect(httpDate('Sun, 06 Nov 1994 08:49:37 GMT', now)).toBe(t);
    expect(httpDate('Sunday, 06-Nov-94 08:49:37 GMT', now)).toBe(t);
    expect(httpDate('Sat, 31 Dec 2016 23:59:60 GMT', now)).toBe(Date.UTC(2016, 11, 31, 23, 59, 59)); // a leap second
    expect(httpDate('Sun Nov  6 08:49:37 1994', now)).toBe(t);
    expect(httpDate('Saturday, 01-Jan-50 00:00:00 GMT', now)).toBe(Date.UTC(2050, 0, 1));
    expect(httpDate('Friday, 01-Jan-77 00:00:00 GMT', now)).toBe(Date.UTC(1977, 0, 1));
  });
  it('takes an RFC 850 year as the one not more than 50 years ahead, to the day', () => {
    const june2025 = Date.UTC(2025, 5, 1);
    expect(httpDate('Monday, 01-Dec-75 00:00:00 GMT', june2025)).toBe(Date.UTC(1975, 11, 1)); // 2075-12 is more than 50 years ahead
    expect(httpDate('Saturday, 01-Jan-75 00:00:00 GMT', june2025)).toBe(Date.UTC(2075, 0, 1)); // 2075-01 is not
  });
  it.each(['1', '2100', 'yesterday 5', '2026-12-02T00:00:00Z', 'Sun, 6 Nov 1994 08:49:37 GMT', 'Sun, 06 Nov 1994 08:49:37 UTC', '', 'Tue, 31 Feb 2025 00:00:00 GMT', 'Sun, 06 Nov 1994 24:00:00 GMT', 'Sun, 06 Nov 1994 12:00:60 GMT', 'Sun Nov 31 08:49:37 1994'])('ignores %j', (v) => {
    expect(httpDate(v, now)).toBeNull();
  });
});

describe('evaluate', () => {
  const rep = { etag: '"7-1000"', lastModified: 1000, size: 10 };
  const h = (o: Record<string, string>) => new Headers(o);
  it('If-Match * holds for any current representation; a weak tag never matches strongly', () => {
    expect(evaluate(h({ 'if-match': '*' }), rep).status).toBe(200);
    expect(evaluate(h({ 'if-match': 'W/"7-1000"' }), rep).status).toBe(412);
    expect(evaluate(h({ 'if-none-match': 'W/"7-1000"' }), rep).status).toBe(304);
  });
  it('If-Range with a weak tag does not resume (§13.1.5: strong only)', () => {
    expect(evaluate(h({ range: 'bytes=0-1', 'if-range': 'W/"7-1000"' }), rep).status).toBe(200);
    expect(evaluate(h({ range: 'bytes=0-1', 'if-range': '"7-1000"' }), rep).status).toBe(206);
  });
  it('a HEAD ignores Range and If-Range', () => {
    expect(evaluate(h({ range: 'bytes=0-1' }), rep, 'HEAD').status).toBe(200);
    expect(evaluate(h({ range: 'bytes=99-' }), rep, 'HEAD').status).toBe(200);
  });
});
