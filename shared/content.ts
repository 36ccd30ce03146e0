import { mediaType, utf8Text } from './envelope';
import { SENML_CBOR, SENML_JSON, SenmlError, decodeSenmlCbor, decodeSenmlJson, type SenmlRecord } from './senml';

/**
 * What a payload's content type promises, checked the same way wherever it is asked: by the channel
 * actor at its door (objects/channel/payload.ts), and by the MQTT bridge for a will at CONNECT, so
 * a will is refused then rather than dropped when it fires.
 *  - SenML JSON / CBOR (RFC 8428): decoded and resolved by shared/senml (the records are returned);
 *  - application/json: an object or an array of objects (what the query API and the console can
 *    show as fields);
 *  - every other type is opaque bytes.
 */
export type ContentCheck = { ok: true; records: SenmlRecord[] | null } | { ok: false; code: 'invalid_senml' | 'invalid_json'; message: string };

const OPAQUE: ContentCheck = Object.freeze({ ok: true, records: null });

function senml(decode: () => SenmlRecord[]): ContentCheck {
  try {
    return { ok: true, records: decode() };
  } catch (e) {
    if (e instanceof SenmlError) return { ok: false, code: 'invalid_senml', message: `invalid SenML: ${e.message}` };
    throw e;
  }
}

const invalidJson = (message: string): ContentCheck => ({ ok: false, code: 'invalid_json', message });

function jsonObjects(payload: Uint8Array): ContentCheck {
  const text = utf8Text(payload);
  if (text === null) return invalidJson('application/json payload is not valid UTF-8 (RFC 8259 §8.1)');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return invalidJson(`application/json payload is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  const isObject = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObject(value)) return OPAQUE;
  if (Array.isArray(value)) {
    const bad = value.findIndex((v) => !isObject(v));
    if (bad < 0) return OPAQUE;
    return invalidJson(`application/json payload must be an object or an array of objects; element ${bad} is not an object`);
  }
  return invalidJson('application/json payload must be an object or an array of objects');
}

/** `nowMs` resolves SenML relative times (RFC 8428 §4.5.3): the message's own time. */
export function checkContent(contentType: string, payload: Uint8Array, nowMs: number): ContentCheck {
  const type = mediaType(contentType);
  const now = nowMs / 1000;
  if (type === SENML_JSON) return senml(() => decodeSenmlJson(payload, now));
  if (type === SENML_CBOR) return senml(() => decodeSenmlCbor(payload, now));
  if (type === 'application/json') return jsonObjects(payload);
  return OPAQUE;
}
