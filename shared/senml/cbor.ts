/**
 * SenML CBOR, application/senml+cbor (RFC 8428 §6): decode to resolved records, encode resolved
 * records with the integer labels of Table 4.
 */
import { Decoder, Encoder } from 'cbor-x';
import { bytesToBase64url, base64urlToBytes } from './chars';
import { scanSenmlCbor } from './cbor-scan';
import { readCommonPack } from './cbor-fast';
import { checkRecordArray, checkResolvedRecord } from './check';
import {
  Resolver, asSenmlError, clearRawRecord, decodeClock, decodeLimit, emptyRawRecord, mustUnderstand,
  readBoolean, readNumber, readString, type RawRecord,
} from './resolve';
import { CBOR_LABEL, SENML_LABELS, SenmlError, preview, type SenmlDecodeOptions, type SenmlRecord } from './types';

// Options for untrusted input. Maps decode as JS Maps (mapsAsObjects: false) so an integer label
// stays a number: with plain objects cbor-x turns the key 2 into the property "2", which a text key
// "2" (or a float key 2.0) would also produce; Maps are also about twice as fast here. No record
// structures, no bundled strings, no structured clone, no packing; cbor-scan.ts refuses every tag
// that could switch those back on before this decoder sees the bytes.
const decoder = new Decoder({
  mapsAsObjects: false,
  useRecords: false,
  bundleStrings: false,
  structuredClone: false,
  pack: false,
  copyBuffers: false,
});

// Plain CBOR maps with integer keys (no tag 259), untagged byte strings, doubles kept as doubles.
// (useTag259ForMaps is honoured by cbor-x but missing from its Options type, hence the variable.)
const encoderOptions = {
  mapsAsObjects: false,
  useRecords: false,
  useTag259ForMaps: false,
  tagUint8Array: false,
  bundleStrings: false,
  structuredClone: false,
  pack: false,
};
const encoder = new Encoder(encoderOptions);

/** Decode a SenML CBOR pack to resolved records; throws only SenmlError. */
export function decodeSenmlCbor(input: Uint8Array, now?: number, options?: SenmlDecodeOptions): SenmlRecord[] {
  const clock = decodeClock(now);
  const maxRecords = decodeLimit(options?.maxRecords);
  if (!(input instanceof Uint8Array)) throw new SenmlError(-1, null, `must be given as a Uint8Array, got ${preview(input)}`);
  scanSenmlCbor(input, maxRecords);
  // The common pack straight into records (cbor-fast.ts); anything else, and every error, the general way.
  return fastDecode(input, clock) ?? generalDecode(input, clock);
}

/** The general way: cbor-x builds the pack, then each record's labels are read (exported for the differential test). */
export function generalDecode(input: Uint8Array, clock: number): SenmlRecord[] {
  let pack: unknown;
  try {
    pack = decoder.decode(input) as unknown;
  } catch (error) {
    throw asSenmlError(error, 'is not valid CBOR');
  }
  if (!Array.isArray(pack)) throw new SenmlError(-1, null, 'must be a CBOR array of records (RFC 8428 §6)');
  try {
    const resolver = new Resolver(clock);
    const raw = emptyRawRecord();
    for (let i = 0; i < pack.length; i++) {
      const rec: unknown = pack[i];
      if (!(rec instanceof Map)) throw new SenmlError(i, null, `must be a CBOR map, got ${preview(rec)}`);
      clearRawRecord(raw);
      readRecord(i, rec, raw);
      resolver.add(i, raw);
    }
    return resolver.finish();
  } catch (error) {
    throw asSenmlError(error, 'could not be resolved');
  }
}

/** The common pack's records, or null: its records could not all be read, or one did not resolve. */
export function fastDecode(input: Uint8Array, clock: number): SenmlRecord[] | null {
  const resolver = new Resolver(clock);
  try {
    return readCommonPack(input, emptyRawRecord(), (i, raw) => resolver.add(i, raw)) ? resolver.finish() : null;
  } catch {
    return null; // a record the resolver refuses: the general way finds it again and says why
  }
}

function readBytes(i: number, raw: unknown): string {
  if (raw instanceof Uint8Array) return bytesToBase64url(raw);
  throw new SenmlError(i, 'vd', `must be a byte string in CBOR (RFC 8428 §6), got ${preview(raw)}`);
}

// RFC 8428 §6 Table 4. Unknown integer labels are ignored (the table is conclusive, §6); text labels
// are extensions, ignored unless they end in '_' (§4.4).
function readRecord(i: number, rec: Map<unknown, unknown>, raw: RawRecord): void {
  for (const [key, val] of rec) {
    if (typeof key === 'number') {
      switch (key) {
        case -1: raw.bver = readNumber(i, 'bver', val); break;
        case -2: raw.bn = readString(i, 'bn', val); break;
        case -3: raw.bt = readNumber(i, 'bt', val); break;
        case -4: raw.bu = readString(i, 'bu', val); break;
        case -5: raw.bv = readNumber(i, 'bv', val); break;
        case -6: raw.bs = readNumber(i, 'bs', val); break;
        case 0: raw.n = readString(i, 'n', val); break;
        case 1: raw.u = readString(i, 'u', val); break;
        case 2: raw.v = readNumber(i, 'v', val); break;
        case 3: raw.vs = readString(i, 'vs', val); break;
        case 4: raw.vb = readBoolean(i, 'vb', val); break;
        case 5: raw.s = readNumber(i, 's', val); break;
        case 6: raw.t = readNumber(i, 't', val); break;
        case 7: raw.ut = readNumber(i, 'ut', val); break;
        case 8: raw.vd = readBytes(i, val); break;
        default: break;
      }
    } else if (typeof key === 'string') {
      if (key.charCodeAt(key.length - 1) === 95 /* _ */) throw mustUnderstand(i, key);
      // A text key spelling an RFC label is an encoder that wrote JSON labels into CBOR; ignoring it
      // would silently drop e.g. a base time, so say what is wrong instead.
      if (SENML_LABELS.has(key)) {
        throw new SenmlError(i, key, `is a text label; SenML CBOR uses the integer label ${CBOR_LABEL[key as keyof typeof CBOR_LABEL]} (RFC 8428 §6)`);
      }
    }
  }
}

/** Encode resolved records as a SenML CBOR pack (integer labels, RFC 8428 §6); throws SenmlError. */
export function encodeSenmlCbor(records: SenmlRecord[]): Uint8Array {
  checkRecordArray(records);
  const pack = new Array<Map<number, unknown>>(records.length);
  for (let i = 0; i < records.length; i++) {
    const rec = records[i] as SenmlRecord;
    checkResolvedRecord(i, rec);
    // Keys in ascending order, which is also the deterministic order of RFC 8949 §4.2.1.
    const map = new Map<number, unknown>();
    map.set(CBOR_LABEL.n, rec.name);
    if (rec.unit !== undefined) map.set(CBOR_LABEL.u, rec.unit);
    if (rec.value !== undefined) map.set(CBOR_LABEL.v, rec.value);
    if (rec.stringValue !== undefined) map.set(CBOR_LABEL.vs, rec.stringValue);
    if (rec.boolValue !== undefined) map.set(CBOR_LABEL.vb, rec.boolValue);
    if (rec.sum !== undefined) map.set(CBOR_LABEL.s, rec.sum);
    map.set(CBOR_LABEL.t, rec.time);
    if (rec.updateTime !== undefined) map.set(CBOR_LABEL.ut, rec.updateTime);
    if (rec.dataValue !== undefined) map.set(CBOR_LABEL.vd, base64urlToBytes(rec.dataValue));
    pack[i] = map;
  }
  try {
    // Copy out: the encoder reuses its buffer, and callers get a plain Uint8Array (not a Buffer).
    return new Uint8Array(encoder.encode(pack));
  } catch (error) {
    throw asSenmlError(error, 'could not be encoded');
  }
}
