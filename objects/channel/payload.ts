import { mediaType, utf8Text } from '../../shared/envelope';
import { SENML_CBOR, SENML_JSON, SenmlError, decodeSenmlCbor, decodeSenmlJson, type SenmlRecord } from '../../shared/senml';
import { MiB } from './config';
import { fail, type PublishError } from './types';

/**
 * Content checks at the door, so nothing malformed is ever acknowledged:
 *  - SenML JSON / CBOR (RFC 8428): decoded and resolved by shared/senml; the resolved records are
 *    what the drain writes to `senml_rows`. The payload itself is delivered as published.
 *  - application/json: an object or an array of objects (what the query API and the console
 *    can show as fields); anything else is 400.
 *  - every other type is opaque bytes.
 */
export type Checked = { ok: true; records: string | null } | PublishError;

/** The drain binds records as one JSON parameter; D1 caps a value at 2 MB, leave room. */
const MAX_RECORDS_JSON = 1 * MiB;

/** Compact keys (SenML's own labels) keep the outbox and the drain's JSON parameter small. */
interface StoredRecord {
  i: number;
  n: string;
  t: number;
  u?: string;
  v?: number;
  vs?: string;
  vb?: boolean;
  vd?: string;
  s?: number;
  ut?: number;
}

function compact(records: SenmlRecord[]): StoredRecord[] {
  return records.map((r, i) => ({ i, n: r.name, t: r.time, u: r.unit, v: r.value, vs: r.stringValue, vb: r.boolValue, vd: r.dataValue, s: r.sum, ut: r.updateTime }));
}

function senml(decode: () => SenmlRecord[]): Checked {
  let records: SenmlRecord[];
  try {
    records = decode();
  } catch (e) {
    if (e instanceof SenmlError) return fail(400, 'invalid_senml', `invalid SenML: ${e.message}`);
    throw e;
  }
  const json = JSON.stringify(compact(records));
  if (json.length > MAX_RECORDS_JSON) return fail(413, 'senml_too_large', `the resolved SenML pack is ${json.length} bytes; at most ${MAX_RECORDS_JSON} can be stored`);
  return { ok: true, records: json };
}

function jsonObjects(payload: Uint8Array): Checked {
  const text = utf8Text(payload);
  if (text === null) return fail(400, 'invalid_json', 'application/json payload is not valid UTF-8 (RFC 8259 §8.1)');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return fail(400, 'invalid_json', `application/json payload is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  const isObject = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObject(value)) return { ok: true, records: null };
  if (Array.isArray(value)) {
    const bad = value.findIndex((v) => !isObject(v));
    if (bad < 0) return { ok: true, records: null };
    return fail(400, 'invalid_json', `application/json payload must be an object or an array of objects; element ${bad} is not an object`);
  }
  return fail(400, 'invalid_json', 'application/json payload must be an object or an array of objects');
}

/** `createdMs` resolves SenML relative times (RFC 8428 §4.5.3) against the message's own time. */
export function checkPayload(contentType: string, payload: Uint8Array, createdMs: number): Checked {
  const type = mediaType(contentType);
  const now = createdMs / 1000;
  if (type === SENML_JSON) return senml(() => decodeSenmlJson(payload, now));
  if (type === SENML_CBOR) return senml(() => decodeSenmlCbor(payload, now));
  if (type === 'application/json') return jsonObjects(payload);
  return { ok: true, records: null };
}
