import { z } from '@hono/zod-openapi';
import { ApiError } from './errors';
import { PageQuery } from './openapi';

/**
 * Listing and filtering shared by the named, metadata-carrying entities (devices, channels):
 * `name` is a case-insensitive substring; `metadata` is a JSON object that must be contained in the
 * entity's metadata — every leaf of the filter must be present with an equal value, nested objects
 * compared key by key, arrays and scalars compared as whole JSON values.
 */

export const ListQuery = PageQuery.extend({
  name: z.string().max(200).optional().openapi({ description: 'Case-insensitive substring of the name' }),
  metadata: z.string().max(4096).optional().openapi({ description: 'JSON object contained in the metadata, e.g. {"room":"lab"}' }),
});

export interface Filter {
  where: string;
  params: unknown[];
}

const likeEscape = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

function leaves(obj: Record<string, unknown>, path: string, out: { path: string; value: unknown }[]): void {
  for (const [k, v] of Object.entries(obj)) {
    if (k.includes('"') || k.includes('\\')) throw new ApiError(400, 'invalid_filter', `metadata filter key ${JSON.stringify(k)} may not contain quotes or backslashes`);
    const p = `${path}."${k}"`;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      if (Object.keys(v).length === 0) out.push({ path: p, value: v });
      else leaves(v as Record<string, unknown>, p, out);
    } else out.push({ path: p, value: v });
  }
}

/** SQL (for `alias.name` / `alias.metadata`) for the name and metadata filters; all values bound. */
export function entityFilter(alias: string, q: { name?: string; metadata?: string }): Filter {
  const parts: string[] = [];
  const params: unknown[] = [];
  if (q.name) {
    parts.push(`${alias}.name LIKE ? ESCAPE '\\'`);
    params.push(`%${likeEscape(q.name)}%`);
  }
  if (q.metadata !== undefined) {
    let filter: unknown;
    try {
      filter = JSON.parse(q.metadata);
    } catch {
      throw new ApiError(400, 'invalid_filter', 'metadata filter is not valid JSON');
    }
    if (filter === null || typeof filter !== 'object' || Array.isArray(filter)) throw new ApiError(400, 'invalid_filter', 'metadata filter must be a JSON object');
    const ls: { path: string; value: unknown }[] = [];
    leaves(filter as Record<string, unknown>, '$', ls);
    for (const { path, value } of ls) {
      if (value === null) {
        parts.push(`json_type(${alias}.metadata, ?) = 'null'`);
        params.push(path);
      } else if (typeof value === 'boolean') {
        parts.push(`json_type(${alias}.metadata, ?) = ?`);
        params.push(path, value ? 'true' : 'false');
      } else if (typeof value === 'object') {
        // arrays and empty objects: equal as JSON documents
        parts.push(`json(json_extract(${alias}.metadata, ?)) = json(?)`);
        params.push(path, JSON.stringify(value));
      } else {
        parts.push(`json_type(${alias}.metadata, ?) IN ('text', 'integer', 'real') AND json_extract(${alias}.metadata, ?) = ?`);
        params.push(path, path, value);
      }
    }
  }
  return { where: parts.length ? ` AND ${parts.join(' AND ')}` : '', params };
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
