import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from 'commander';
import { parse as parseYaml } from 'yaml';

/** Argument parsers for commander: each turns a string into a value or a usage error. */

export function jsonObject(text: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new InvalidArgumentError('not valid JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidArgumentError('must be a JSON object, e.g. {"room":"lab"}');
  return v as Record<string, unknown>;
}

export function integer(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('must be a non-negative integer');
  return n;
}

export function number(text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('must be a number');
  return n;
}

/**
 * `name=value` → a [name, value] pair, appended to earlier occurrences of the option. The value is
 * JSON when it parses as JSON (`4096`, `true`, `{"perSecond":50}`), else the text itself
 * (`defaultContentType=application/senml+json`, which JSON would refuse): the API's schema says
 * which type each name takes, and answers a wrong one with a 422 naming it.
 */
export function assignment(text: string, previous: [string, unknown][] = []): [string, unknown][] {
  const at = text.indexOf('=');
  if (at <= 0) throw new InvalidArgumentError('NAME=VALUE, e.g. maxPayloadBytes=4096');
  const raw = text.slice(at + 1);
  let value: unknown = raw;
  try {
    value = JSON.parse(raw);
  } catch {
    /* not JSON: the text as it is */
  }
  return [...previous, [text.slice(0, at), value]];
}

/** `a,b c` → ['a', 'b', 'c'], appended to earlier occurrences of the option. */
export const list = (text: string, previous: string[] = []): string[] => [...previous, ...text.split(/[\s,]+/).filter(Boolean)];

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
/** `3600`, `90s`, `15m`, `12h`, `30d`, `2w` → seconds. */
export function duration(text: string): number {
  const m = /^(\d+)([smhdw]?)$/.exec(text.trim());
  if (!m) throw new InvalidArgumentError('a duration: seconds, or a number with s, m, h, d or w (e.g. 30d)');
  return Number(m[1]) * UNITS[m[2] || 's']!;
}

/** A JSON or YAML file (YAML is a superset of JSON, so one parser reads both). */
export function readDocument(path: string): unknown {
  const text = path === '-' ? readFileSync(0, 'utf8') : readFileSync(path, 'utf8');
  return parseYaml(text);
}
