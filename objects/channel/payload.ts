import { checkContent } from '../../shared/content';
import type { SenmlRecord } from '../../shared/senml';
import { MiB } from './config';
import { fail, type PublishError } from './types';

/**
 * Content checks at the door, so nothing malformed is ever acknowledged (shared/content.ts, the
 * checks the MQTT bridge also makes of a will at CONNECT): an invalid SenML or JSON payload is 400.
 * SenML's resolved records are what the drain writes to `senml_rows`; the payload itself is
 * delivered as published.
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

/** `createdMs` resolves SenML relative times (RFC 8428 §4.5.3) against the message's own time. */
export function checkPayload(contentType: string, payload: Uint8Array, createdMs: number): Checked {
  const checked = checkContent(contentType, payload, createdMs);
  if (!checked.ok) return fail(400, checked.code, checked.message);
  if (!checked.records) return { ok: true, records: null };
  const json = recordsJson(checked.records);
  if (json.length > MAX_RECORDS_JSON) return fail(413, 'senml_too_large', `the resolved SenML pack is ${json.length} bytes; at most ${MAX_RECORDS_JSON} can be stored`);
  return { ok: true, records: json };
}
