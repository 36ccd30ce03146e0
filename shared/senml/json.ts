/**
 * SenML JSON, application/senml+json (RFC 8428 §5): decode to resolved records, encode resolved records.
 */
import { base64urlFault } from './chars';
import { checkRecordArray, checkResolvedRecord } from './check';
import {
  Resolver, asSenmlError, checkMaxRecords, clearRawRecord, decodeClock, decodeLimit, emptyRawRecord,
  mustUnderstand, readBoolean, readNumber, readString, type RawRecord,
} from './resolve';
import { SenmlError, preview, type SenmlDecodeOptions, type SenmlRecord } from './types';

// RFC 8428 §5: only the UTF-8 form of JSON is allowed, so reject bytes that are not UTF-8.
// A leading byte order mark is dropped (RFC 8259 §8.1 lets parsers ignore it).
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** Decode a SenML JSON pack (text or UTF-8 bytes) to resolved records; throws only SenmlError. */
export function decodeSenmlJson(input: string | Uint8Array, now?: number, options?: SenmlDecodeOptions): SenmlRecord[] {
  const clock = decodeClock(now);
  const maxRecords = decodeLimit(options?.maxRecords);
  let text: string;
  if (typeof input === 'string') text = input;
  else if (input instanceof Uint8Array) {
    try {
      text = utf8.decode(input);
    } catch {
      throw new SenmlError(-1, null, 'is not valid UTF-8 (RFC 8428 §5)');
    }
  } else throw new SenmlError(-1, null, `must be given as a string or a Uint8Array, got ${preview(input)}`);
  let pack: unknown;
  try {
    pack = JSON.parse(text);
  } catch (error) {
    throw asSenmlError(error, 'is not valid JSON');
  }
  return decodeSenmlJsonValue(pack, clock, { maxRecords });
}

/** Resolve a pack that is already parsed JSON (e.g. a request body); throws only SenmlError. */
export function decodeSenmlJsonValue(pack: unknown, now?: number, options?: SenmlDecodeOptions): SenmlRecord[] {
  const clock = decodeClock(now);
  const maxRecords = decodeLimit(options?.maxRecords);
  if (!Array.isArray(pack)) throw new SenmlError(-1, null, `must be a JSON array of records (RFC 8428 §5), got ${preview(pack)}`);
  const count = pack.length;
  if (count === 0) throw new SenmlError(-1, null, 'is empty; a pack has one or more records (RFC 8428 §3)');
  checkMaxRecords(count, maxRecords);
  try {
    const resolver = new Resolver(clock);
    const raw = emptyRawRecord();
    for (let i = 0; i < count; i++) {
      const rec: unknown = pack[i];
      if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) {
        throw new SenmlError(i, null, `must be a JSON object, got ${preview(rec)}`);
      }
      clearRawRecord(raw);
      readRecord(i, rec as Record<string, unknown>, raw);
      resolver.add(i, raw);
    }
    return resolver.finish();
  } catch (error) {
    throw asSenmlError(error, 'could not be resolved');
  }
}

// RFC 8428 §5 Table 2 labels and JSON types; unknown labels are ignored unless they end in '_' (§4.4).
function readRecord(i: number, rec: Record<string, unknown>, raw: RawRecord): void {
  for (const key in rec) {
    const val = rec[key];
    switch (key) {
      case 'bn': raw.bn = readString(i, key, val); break;
      case 'bt': raw.bt = readNumber(i, key, val); break;
      case 'bu': raw.bu = readString(i, key, val); break;
      case 'bv': raw.bv = readNumber(i, key, val); break;
      case 'bs': raw.bs = readNumber(i, key, val); break;
      case 'bver': raw.bver = readNumber(i, key, val); break;
      case 'n': raw.n = readString(i, key, val); break;
      case 'u': raw.u = readString(i, key, val); break;
      case 'v': raw.v = readNumber(i, key, val); break;
      case 'vs': raw.vs = readString(i, key, val); break;
      case 'vb': raw.vb = readBoolean(i, key, val); break;
      case 'vd': {
        const data = readString(i, key, val);
        const fault = base64urlFault(data);
        if (fault !== null) throw new SenmlError(i, key, fault);
        raw.vd = data;
        break;
      }
      case 's': raw.s = readNumber(i, key, val); break;
      case 't': raw.t = readNumber(i, key, val); break;
      case 'ut': raw.ut = readNumber(i, key, val); break;
      default:
        if (key.charCodeAt(key.length - 1) === 95 /* _ */) throw mustUnderstand(i, key);
    }
  }
}

interface JsonRecord {
  n: string;
  u?: string;
  t: number;
  v?: number;
  vs?: string;
  vb?: boolean;
  vd?: string;
  s?: number;
  ut?: number;
}

/** Encode resolved records as a SenML JSON pack of resolved records (no base fields); throws SenmlError. */
export function encodeSenmlJson(records: SenmlRecord[]): string {
  checkRecordArray(records);
  const out: JsonRecord[] = new Array<JsonRecord>(records.length);
  for (let i = 0; i < records.length; i++) {
    const rec = records[i] as SenmlRecord;
    checkResolvedRecord(i, rec);
    const json: JsonRecord = { n: rec.name, t: rec.time };
    if (rec.unit !== undefined) json.u = rec.unit;
    if (rec.value !== undefined) json.v = rec.value;
    else if (rec.stringValue !== undefined) json.vs = rec.stringValue;
    else if (rec.boolValue !== undefined) json.vb = rec.boolValue;
    else if (rec.dataValue !== undefined) json.vd = rec.dataValue;
    if (rec.sum !== undefined) json.s = rec.sum;
    if (rec.updateTime !== undefined) json.ut = rec.updateTime;
    out[i] = json;
  }
  return JSON.stringify(out);
}
