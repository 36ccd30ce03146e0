import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor, type Cursor } from './cursor';

/** A small deterministic generator, so a failure names its seed. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), (x >>> 0) / 2 ** 32);
}
const b64url = (s: string) => btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

describe('listing cursors', () => {
  it('decode what they encode, for any position', () => {
    const r = rng(7);
    for (let i = 0; i < 2000; i++) {
      const order = r() < 0.5 ? 'asc' : 'desc';
      const seq = Math.floor(r() * 2 ** 53);
      const c: Cursor = r() < 0.5 ? { kind: 'm', order, created: Math.floor(r() * 2 ** 45), seq } : { kind: 's', order, time: (r() - 0.3) * 2 ** (r() * 60), seq, idx: Math.floor(r() * 10_000) };
      const text = encodeCursor(c);
      expect(text).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(decodeCursor(text)).toEqual(c);
    }
  });

  it('answer null, never throw, for random text, random bytes and near-miss JSON', () => {
    const r = rng(11);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/. %"[]';
    const near = [
      '[]', '["m"]', '["m","desc"]', '["m","desc",1]', '["m","desc",1,2,3]', '["m","sideways",1,2]', '["m","desc","1",2]', '["m","desc",1,-2]',
      '["m","desc",1e400,2]', '["m","desc",1.5,2]', '["s","asc",1,2]', '["s","asc",null,2,3]', '["s","asc",1,2,3.5]', '["q","asc",1,2]', '{"kind":"m"}', 'null', '1', '"m"',
    ];
    let accepted = 0;
    for (let i = 0; i < 5000; i++) {
      let text: string;
      const pick = r();
      if (pick < 0.4) text = Array.from({ length: Math.floor(r() * 60) }, () => alphabet[Math.floor(r() * alphabet.length)]).join('');
      else if (pick < 0.7) text = b64url(String.fromCharCode(...Array.from({ length: Math.floor(r() * 40) }, () => Math.floor(r() * 256))));
      else if (pick < 0.9) text = b64url(near[Math.floor(r() * near.length)]!);
      else {
        // a real cursor with one character changed or cut short
        const real = encodeCursor({ kind: 'm', order: 'desc', created: Math.floor(r() * 2 ** 40), seq: Math.floor(r() * 1e6) });
        const at = Math.floor(r() * real.length);
        text = r() < 0.5 ? real.slice(0, at) : real.slice(0, at) + alphabet[Math.floor(r() * 64)] + real.slice(at + 1);
      }
      const c = decodeCursor(text);
      if (c === null) continue;
      accepted++;
      // whatever is accepted is a whole cursor, and means what it would mean if encoded afresh
      expect(decodeCursor(encodeCursor(c))).toEqual(c);
    }
    expect(accepted).toBeLessThan(600); // mostly refused: only the mutated real cursors can still parse
    for (const n of near) expect(decodeCursor(b64url(n)), n).toBeNull();
    expect(decodeCursor('x'.repeat(201))).toBeNull();
  });
});
