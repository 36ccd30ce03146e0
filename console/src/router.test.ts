import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../shared/testing/prng';
import { decodeSegment, match, safeNext } from './router';

describe('console routes', () => {
  it('matches patterns and decodes parameters', () => {
    expect(match('/o/:org/channels/:id', '/o/acme%20co/channels/c-1')).toEqual({ org: 'acme co', id: 'c-1' });
    expect(match('/o/:org/channels/:id', '/o/acme/channels/c-1/')).toEqual({ org: 'acme', id: 'c-1' });
    expect(match('/o/:org/channels/:id', '/o/acme/channels/c-1/history')).toBeNull();
    expect(match('/o/:org/:section', '/x/acme/devices')).toBeNull();
  });

  it('keeps a malformed escape as typed instead of throwing', () => {
    expect(decodeSegment('%E0%A4%A')).toBe('%E0%A4%A');
    expect(match('/o/:org/:section', '/o/%ZZ/devices')).toEqual({ org: '%ZZ', section: 'devices' });
  });

  it('never throws on random paths (the address bar is user input)', () => {
    const rnd = mulberry32(6);
    const alphabet = '/%:#?.-_aZ09\u00e9\u{1F600}';
    for (let i = 0; i < 5000; i++) {
      const path = Array.from({ length: Math.floor(rnd() * 40) }, () => [...alphabet][Math.floor(rnd() * [...alphabet].length)]).join('');
      for (const pattern of ['/o/:org/:section', '/o/:org/channels/:id', '/o/:org/channels/:id/history', '/login']) {
        const m = match(pattern, path);
        if (m) expect(Object.keys(m).every((k) => typeof m[k] === 'string')).toBe(true);
      }
    }
  });

  it('returns after login only to a path on this origin (?next=)', () => {
    const origin = 'https://console.example';
    expect(safeNext('/o/acme/devices?x=1', origin)).toBe('/o/acme/devices?x=1');
    expect(safeNext(null, origin)).toBe('/');
    for (const next of ['//evil.example/x', '/\\evil.example/x', '/\t/evil.example', '/\n/evil.example', 'https://evil.example/', 'javascript:alert(1)', 'o/acme', '', '/.//evil.example/x', '/..//evil.example', '/%2e%2e//evil', '/a/..//evil'])
      expect(safeNext(next, origin), JSON.stringify(next)).toBe('/');
  });
});
