/**
 * SenML (RFC 8428) codec: JSON and CBOR packs in, resolved records out, and back.
 * What is accepted and how records are resolved: docs/senml.md.
 */
export {
  CBOR_LABEL,
  DEFAULT_MAX_RECORDS,
  RELATIVE_TIME_LIMIT,
  SENML_CBOR,
  SENML_JSON,
  SENML_VERSION,
  SenmlError,
  type SenmlDecodeOptions,
  type SenmlRecord,
} from './types';
export { decodeSenmlJson, decodeSenmlJsonValue, encodeSenmlJson } from './json';
export { decodeSenmlCbor, encodeSenmlCbor } from './cbor';
