import { OpenAPIHono } from '@hono/zod-openapi';
import { HTTPException } from 'hono/http-exception';
import type { AppEnv } from '../app-env';
import { ApiError, problem } from './errors';

type Issue = { path: PropertyKey[]; message: string; code?: string; errors?: Issue[][] };

/**
 * A body that fits no form of a union (/internal/authorize: `principal` and `checks`, or `items`) is
 * told what is wrong with the form it was written in, not zod's bare "Invalid input" at the root: the
 * first form whose every issue is under a key the body has (a batch has `items`; a single question,
 * `principal`), else the first form. Not the form with the fewest issues: a batch with two bad items
 * has as many as the single form finds (`principal`, `checks` missing).
 */
function closest(issue: Issue, input: unknown): Issue[] {
  if (issue.code !== 'invalid_union' || !issue.errors?.length) return [issue];
  const value = valueAt(input, issue.path);
  const has = (i: Issue) => i.path.length === 0 || (typeof value === 'object' && value !== null && Object.hasOwn(value, i.path[0]!));
  const form = issue.errors.find((issues) => issues.every(has)) ?? issue.errors[0]!;
  return form.flatMap((i) => closest({ ...i, path: [...issue.path, ...i.path] }, input));
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v = input;
  for (const k of path) v = typeof v === 'object' && v !== null ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}

/**
 * Every router is an OpenAPIHono built with this factory, so request validation failures
 * take the one error shape and every route lands in /openapi.json.
 */
export function router(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({
    defaultHook: async (result, c) => {
      if (!result.success) {
        // A union's form is picked by the keys of the body (Hono keeps it parsed: no second read).
        const input = result.target === 'json' && result.error.issues.some((i) => i.code === 'invalid_union') ? await c.req.json<unknown>() : undefined;
        const issues = result.error.issues.flatMap((i) => closest(i, input)).map((i) => ({ path: i.path.join('.'), message: i.message }));
        const where = result.target === 'json' ? 'body' : result.target;
        // A body that parsed but failed the schema is 422; a bad query or path is 400.
        const status = result.target === 'json' ? 422 : 400;
        const first = issues[0];
        throw new ApiError(status, 'validation_failed', `invalid ${where}${first ? `: ${first.path || '(root)'}: ${first.message}` : ''}`, issues);
      }
    },
  });
}

/** The one onError: ApiError, Hono's HTTPException (malformed JSON, 415 gate) and anything unexpected become problem+json. */
export function onError(err: Error, c: Parameters<Parameters<OpenAPIHono<AppEnv>['onError']>[0]>[1]): Response {
  if (err instanceof ApiError) return problem(c, err);
  if (err instanceof HTTPException) {
    const status = err.status;
    const code = status === 415 ? 'unsupported_media_type' : status === 400 ? 'malformed_request' : 'http_error';
    const message =
      status === 400 && /json/i.test(err.message)
        ? 'request body is not valid JSON'
        : status === 415
          ? `this route takes a JSON body: send it with Content-Type: application/json (got ${c.req.header('content-type') ?? 'none'})`
          : err.message || 'request failed';
    return problem(c, new ApiError(status, code, message));
  }
  console.error('unhandled error', err);
  return problem(c, new ApiError(500, 'internal', 'internal error'));
}
