/**
 * Checks a resolved record before it is encoded, so both encoders only ever write valid SenML
 * (RFC 8428 §4.2, §4.5, §4.6). Errors name the record and the SenML label of the bad field.
 */
import { base64urlFault, describeNameFault, nameFault } from './chars';
import { RELATIVE_TIME_LIMIT, SenmlError, preview, type SenmlRecord } from './types';

function finiteNumber(i: number, label: string, x: unknown): void {
  if (typeof x !== 'number' || x - x !== 0) throw new SenmlError(i, label, `must be a finite number, got ${preview(x)}`);
}

/** Throws SenmlError unless `rec` is a valid resolved record. */
export function checkResolvedRecord(i: number, rec: SenmlRecord): void {
  if (typeof rec !== 'object' || rec === null) throw new SenmlError(i, null, `must be a record object, got ${preview(rec)}`);
  const { name, time, unit, value, stringValue, boolValue, dataValue, sum, updateTime } = rec;
  if (typeof name !== 'string') throw new SenmlError(i, 'n', `must be a string, got ${preview(name)}`);
  const at = name.length === 0 ? 0 : nameFault(name, true);
  if (at >= 0) throw new SenmlError(i, 'n', describeNameFault(name, at));
  finiteNumber(i, 't', time);
  // A resolved record has no relative time (RFC 8428 §4.6), and a t below 2**28 would read back as one.
  if (time < RELATIVE_TIME_LIMIT) {
    throw new SenmlError(i, 't', `must be an absolute time (at least 2**28 s) in a resolved record (RFC 8428 §4.6), got ${time}`);
  }
  if (unit !== undefined && (typeof unit !== 'string' || unit.length === 0)) {
    throw new SenmlError(i, 'u', `must be a non-empty string when present, got ${preview(unit)}`);
  }
  let values = 0;
  if (value !== undefined) { finiteNumber(i, 'v', value); values++; }
  if (stringValue !== undefined) {
    if (typeof stringValue !== 'string') throw new SenmlError(i, 'vs', `must be a string, got ${preview(stringValue)}`);
    values++;
  }
  if (boolValue !== undefined) {
    if (typeof boolValue !== 'boolean') throw new SenmlError(i, 'vb', `must be a boolean, got ${preview(boolValue)}`);
    values++;
  }
  if (dataValue !== undefined) {
    if (typeof dataValue !== 'string') throw new SenmlError(i, 'vd', `must be a base64url string, got ${preview(dataValue)}`);
    const fault = base64urlFault(dataValue);
    if (fault !== null) throw new SenmlError(i, 'vd', fault);
    values++;
  }
  if (sum !== undefined) finiteNumber(i, 's', sum);
  if (updateTime !== undefined) finiteNumber(i, 'ut', updateTime);
  if (values > 1) throw new SenmlError(i, null, 'has more than one of value, stringValue, boolValue, dataValue (RFC 8428 §4.2)');
  if (values === 0 && sum === undefined) {
    throw new SenmlError(i, null, 'has no value (value, stringValue, boolValue or dataValue) and no sum (RFC 8428 §4.2)');
  }
}

export function checkRecordArray(records: unknown): asserts records is SenmlRecord[] {
  if (!Array.isArray(records)) throw new SenmlError(-1, null, `must be an array of records, got ${preview(records)}`);
  if (records.length === 0) throw new SenmlError(-1, null, 'is empty; a pack has one or more records (RFC 8428 §3)');
}
