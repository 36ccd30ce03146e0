import { ApiError } from './errors';

/**
 * Listing and filtering shared by the listed entities. `name` (devices, channels, apps, API keys; and
 * `email` for members) is a case-insensitive substring in which `%` and `_` match themselves. For the
 * metadata-carrying ones (devices, channels), `metadata` is a JSON object that must be contained in the
 * entity's metadata — every leaf of the filter must be present with an equal value, nested objects
 * compared key by key, arrays and scalars compared as whole JSON values.
 */

// The leaves of a metadata filter travel as one bound JSON parameter: D1 allows 100 bound parameters per
// statement, so a filter with many keys must not grow the parameter count.

/** One leaf of a metadata filter: a JSON path, the JSON type it must have there and, for scalars/arrays, the value. */
type Leaf = [path: string, kind: 'null' | 'true' | 'false' | 'number' | 'text' | 'array' | 'object', value: unknown];
export const MAX_FILTER_LEAVES = 32;
const badFilter = (detail: string) => new ApiError(400, 'invalid_filter', detail);

function kindOf(v: unknown): Leaf[1] {
  if (v === null) return 'null';
  if (v === true || v === false) return v ? 'true' : 'false';
  if (typeof v === 'number') return 'number';
  if (typeof v === 'string') return 'text';
  return Array.isArray(v) ? 'array' : 'object';
}

function leavesOf(obj: Record<string, unknown>, path: string, out: Leaf[]): Leaf[] {
  for (const [k, v] of Object.entries(obj)) {
    // SQLite's quoted path labels ($."a.b") take any key but one with a quote; backslashes are refused too, since
    // SQLite versions differ on unescaping them.
    if (/["\\]/.test(k)) throw badFilter(`metadata filter key ${JSON.stringify(k)} may not contain quotes or backslashes`);
    const p = `${path}."${k}"`;
    if (kindOf(v) === 'object' && Object.keys(v as object).length > 0) leavesOf(v as Record<string, unknown>, p, out);
    else out.push([p, kindOf(v), v]);
    if (out.length > MAX_FILTER_LEAVES) throw badFilter(`metadata filter may have at most ${MAX_FILTER_LEAVES} leaves`);
  }
  return out;
}

/**
 * Containment: every leaf of the filter must be in the metadata with the same JSON type and value; nested objects
 * are compared key by key (so `{}` matches any object); arrays and scalars as whole values; numbers by value
 * (2 = 2.0); strings exactly. The leaves travel as ONE bound JSON parameter, walked with json_each, so the SQL
 * text is constant and the parameter count does not grow with the filter.
 */
function containment(column: string): string {
  const path = 'f.value ->> 0';
  const kind = 'f.value ->> 1';
  const value = 'f.value ->> 2';
  const type = `json_type(${column}, ${path})`;
  return `NOT EXISTS (SELECT 1 FROM json_each(?) f WHERE NOT coalesce(CASE
    WHEN ${kind} = 'number' THEN ${type} IN ('integer', 'real') AND json_extract(${column}, ${path}) = ${value}
    WHEN ${kind} IN ('text', 'array') THEN ${type} = ${kind} AND json_extract(${column}, ${path}) = ${value}
    ELSE ${type} = ${kind} END, 0))`;
}

export interface ListFilter {
  name?: string;
  metadata?: string;
}
const likeEscape = (s: string) => s.replace(/[\\%_]/g, (ch) => `\\${ch}`);

/** `AND …` SQL for a case-insensitive substring of `column` (ASCII case folding, as SQLite's LIKE). */
export function substring(column: string, text: string | undefined): { where: string; params: unknown[] } {
  return text ? { where: ` AND ${column} LIKE ? ESCAPE '\\'`, params: [`%${likeEscape(text)}%`] } : { where: '', params: [] };
}

/** `AND …` SQL for `alias.name` (case-insensitive substring) and `alias.metadata` (containment). */
export function listFilter(alias: string, q: ListFilter): { where: string; params: unknown[] } {
  const { where, params } = substring(`${alias}.name`, q.name);
  if (q.metadata === undefined) return { where, params };
  let filter: unknown;
  try {
    filter = JSON.parse(q.metadata);
  } catch {
    throw badFilter('metadata filter is not valid JSON');
  }
  if (kindOf(filter) !== 'object') throw badFilter('metadata filter must be a JSON object');
  const leaves = leavesOf(filter as Record<string, unknown>, '$', []);
  if (!leaves.length) return { where, params };
  return { where: `${where} AND ${containment(`${alias}.metadata`)}`, params: [...params, JSON.stringify(leaves)] };
}

/** A list's sort (the `sort` and `order` query parameters of ./openapi `NameQuery`). */
export interface Sort {
  sort?: 'created' | 'name' | 'last_seen';
  order?: 'asc' | 'desc';
}

/**
 * `ORDER BY` SQL for a sort over table `alias` (or none): by creation (the default), name
 * (case-insensitive, as the name filter), or last_seen; `tiebreak` (the creation order's own
 * second key) keeps pages stable among equal values, in the same direction.
 */
export function orderBy(alias: string, q: Sort, tiebreak: string): string {
  const at = alias ? `${alias}.` : '';
  const dir = q.order === 'desc' ? 'DESC' : 'ASC';
  const first = q.sort === 'name' ? `${at}name COLLATE NOCASE` : q.sort === 'last_seen' ? `${at}last_seen` : `${at}created_at`;
  return `${first} ${dir}, ${tiebreak} ${dir}`;
}

/** One page plus the total, in one D1 round trip. */
export async function page<T>(db: D1Database, from: string, params: unknown[], select: string, order: string, offset: number, limit: number): Promise<{ total: number; offset: number; limit: number; items: T[] }> {
  const [count, rows] = await db.batch<Record<string, unknown>>([
    db.prepare(`SELECT COUNT(*) AS n FROM ${from}`).bind(...params),
    db.prepare(`SELECT ${select} FROM ${from} ORDER BY ${order} LIMIT ? OFFSET ?`).bind(...params, limit, offset),
  ]);
  return { total: Number(count?.results[0]?.n ?? 0), offset, limit, items: (rows?.results ?? []) as T[] };
}

export const parseMetadata = (text: string): Record<string, unknown> => JSON.parse(text) as Record<string, unknown>;
