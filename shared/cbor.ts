import { Decoder, Encoder } from 'cbor-x';

/**
 * One CBOR (RFC 8949) configuration for every Edgeflux wire frame: plain arrays and maps, byte
 * strings as major type 2 (no tag 64), no cbor-x record extension — so any CBOR library can
 * read and write our frames.
 */
const encoder = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false, variableMapSize: true });
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true });

export class CborError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CborError';
  }
}

/** Encodes one CBOR data item. The result may be a view into a buffer cbor-x shares between results; never mutate it. */
export function cborEncode(value: unknown): Uint8Array {
  return encoder.encode(value);
}

/** Decodes exactly one CBOR data item from untrusted bytes; every failure is a CborError. */
export function cborDecode(bytes: Uint8Array): unknown {
  try {
    return decoder.decode(bytes);
  } catch (e) {
    throw new CborError(`not valid CBOR: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** A plain Uint8Array view (Node's decoder hands out Buffers; callers compare and store plain views). */
export function asBytes(v: unknown): Uint8Array | null {
  if (v instanceof Uint8Array) return v.constructor === Uint8Array ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  return null;
}

/** Bytes of a WebSocket message event's data (string frames are text, not bytes). */
export function bytesOf(data: ArrayBuffer | ArrayBufferView): Uint8Array {
  return data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
