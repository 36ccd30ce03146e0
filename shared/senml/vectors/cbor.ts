/** Test helpers: build SenML CBOR from JSON-labelled packs with cbor-x, and read hex dumps. */
import { Encoder } from 'cbor-x';
import { base64urlToBytes } from '../chars';
import { CBOR_LABEL } from '../types';

// Plain maps with integer keys, untagged byte strings (useTag259ForMaps is missing from the Options type).
const options = { useRecords: false, mapsAsObjects: false, useTag259ForMaps: false, tagUint8Array: false };
const encoder = new Encoder(options);

export function hex(text: string): Uint8Array {
  const digits = text.replace(/\s+/g, '');
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
}

/** Any value to CBOR (Maps keep their key types). */
export function cbor(value: unknown): Uint8Array {
  return new Uint8Array(encoder.encode(value));
}

/** A JSON SenML pack to the equivalent CBOR pack (RFC 8428 §6): integer labels, vd as bytes. */
export function jsonPackToCbor(pack: unknown): Uint8Array {
  return cbor(toCborValue(pack));
}

function toCborValue(pack: unknown): unknown {
  if (!Array.isArray(pack)) return pack;
  return pack.map((rec: unknown) => {
    if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) return rec;
    const map = new Map<number | string, unknown>();
    for (const [key, value] of Object.entries(rec)) {
      const label = Object.hasOwn(CBOR_LABEL, key) ? (CBOR_LABEL as Record<string, number>)[key] : undefined;
      if (label === undefined) map.set(key, value);
      else if (key === 'vd' && typeof value === 'string') map.set(label, base64urlToBytes(value));
      else map.set(label, value);
    }
    return map;
  });
}
