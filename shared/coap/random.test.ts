import { describe, expect, it } from 'vitest';
import { CoapFormatError, decode, encode, type CoapMessage } from './codec';
import { mulberry32 } from '../testing/prng';

// As mqtt-packet's testRandom.js: whatever arrives, the parser answers with a message or a
// CoapFormatError, never anything else. Seeded, so a failure is reproducible.
const SEED = 0xc0a9;

function randomBytes(rand: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

function randomMessage(rand: () => number): CoapMessage {
  const int = (n: number) => Math.floor(rand() * n);
  const options = [];
  let number = 0;
  for (let i = int(8); i > 0; i--) {
    number += [0, 1, 5, 12, 13, 100, 268, 269, 1000][int(9)]!;
    if (number > 0xffff) break;
    options.push({ number, value: randomBytes(rand, [0, 1, 4, 12, 13, 20, 268, 269, 300][int(9)]!) });
  }
  const empty = rand() < 0.1;
  return {
    type: int(4) as 0 | 1 | 2 | 3,
    code: empty ? 0 : 1 + int(255),
    messageId: int(0x10000),
    token: empty ? new Uint8Array() : randomBytes(rand, int(9)),
    options: empty ? [] : options,
    payload: empty ? new Uint8Array() : randomBytes(rand, rand() < 0.5 ? 0 : 1 + int(600)),
  };
}

function decodeOrFormatError(buf: Uint8Array): CoapMessage | null {
  try {
    return decode(buf);
  } catch (e) {
    if (!(e instanceof CoapFormatError)) throw e;
    return null;
  }
}

describe('CoAP codec — random input', () => {
  it('random datagrams: a message or CoapFormatError, and a decoded one re-encodes to the same bytes', () => {
    const rand = mulberry32(SEED);
    let decoded = 0;
    for (let i = 0; i < 20_000; i++) {
      const buf = randomBytes(rand, Math.floor(rand() * 64));
      // Bias towards version 1 so the option parser is reached.
      if (buf.length > 0 && rand() < 0.8) buf[0] = (buf[0]! & 0x3f) | 0x40;
      const m = decodeOrFormatError(buf);
      if (m) {
        decoded++;
        // §3.1 encodings are canonical (13 means ≥ 13, 14 means ≥ 269), so decode∘encode is exact.
        expect(encode(m)).toEqual(buf);
      }
    }
    expect(decoded).toBeGreaterThan(400);
  });

  it('random messages round-trip; every mutation of their bytes is a message or CoapFormatError', () => {
    const rand = mulberry32(SEED + 1);
    for (let i = 0; i < 3000; i++) {
      const m = randomMessage(rand);
      const wire = encode(m);
      expect(decode(wire)).toEqual(m);
      for (let j = 0; j < 5; j++) {
        const mutated = wire.slice(0, rand() < 0.3 ? Math.floor(rand() * wire.length) : wire.length);
        for (let k = Math.floor(rand() * 4); k >= 0 && mutated.length > 0; k--) mutated[Math.floor(rand() * mutated.length)] = Math.floor(rand() * 256);
        decodeOrFormatError(mutated);
      }
    }
  });
});
