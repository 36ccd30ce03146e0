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

const num = (x: number): string => (x - x === 0 ? `${x}` : 'null');

/**
 * The records as the outbox keeps them and the drain writes them (objects/writer/, INSERT_RECORDS):
 * a JSON array of objects with SenML's own labels (compact, for the outbox and the drain's JSON
 * parameter) and each record's position as `i`, keys in this order, absent fields left out:
 * `{"i":0,"n":"…","t":…,"u":"…","v":…,"vs":"…","vb":…,"vd":"…","s":…,"ut":…}`. Written field by
 * field rather than through JSON.stringify of one new object per record (same text,
 * payload.test.ts). Numbers are finite (shared/senml checks them); `num` still writes anything
 * else as JSON.stringify would (`null`), since text that is not JSON would fail every drain.
 */
export function recordsJson(records: readonly SenmlRecord[]): string {
  let out = '[';
  for (let i = 0; i < records.length; i++) {
    const r = records[i] as SenmlRecord;
    out += `${i === 0 ? '' : ','}{"i":${i},"n":${JSON.stringify(r.name)},"t":${num(r.time)}`;
    if (r.unit !== undefined) out += `,"u":${JSON.stringify(r.unit)}`;
    if (r.value !== undefined) out += `,"v":${num(r.value)}`;
    if (r.stringValue !== undefined) out += `,"vs":${JSON.stringify(r.stringValue)}`;
    if (r.boolValue !== undefined) out += `,"vb":${r.boolValue}`;
    if (r.dataValue !== undefined) out += `,"vd":${JSON.stringify(r.dataValue)}`;
    if (r.sum !== undefined) out += `,"s":${num(r.sum)}`;
    if (r.updateTime !== undefined) out += `,"ut":${num(r.updateTime)}`;
    out += '}';
  }
  return `${out}]`;
}

function senml(decode: () => SenmlRecord[]): Checked {
  let records: SenmlRecord[];
  try {
    records = decode();
  } catch (e) {
    if (e instanceof SenmlError) return fail(400, 'invalid_senml', `invalid SenML: ${e.message}`);
    throw e;
  }
  const json = recordsJson(records);
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
