import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';

/**
 * The one error type of the HTTP API. Whatever throws it, `problem()` turns it into
 * an RFC 9457 problem document: {type, title, status, detail, code, errors?}.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  412: 'Precondition Failed',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  416: 'Range Not Satisfiable',
  422: 'Unprocessable Content',
  426: 'Upgrade Required',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  errors?: unknown;
}

export function problemBody(status: number, code: string, detail: string, errors?: unknown): Problem {
  const body: Problem = {
    type: `https://edgeflux.dev/problems/${code}`,
    title: TITLES[status] ?? 'Error',
    status,
    detail,
    code,
  };
  if (errors !== undefined) body.errors = errors;
  return body;
}

export function problem(c: Context, err: ApiError): Response {
  const res = c.json(problemBody(err.status, err.code, err.message, err.details), err.status as ContentfulStatusCode, {
    'content-type': 'application/problem+json',
    // Both schemes a caller may answer with (RFC 9110 §11.6.1): tokens and API keys, device keys.
    ...(err.status === 401 ? { 'www-authenticate': 'Bearer realm="edgeflux", Device realm="edgeflux"' } : {}),
    ...err.headers,
  });
  return res;
}

export const notFound = (what: string) => new ApiError(404, 'not_found', `${what} not found`);
export const forbidden = (message = 'not allowed') => new ApiError(403, 'forbidden', message);
export const unauthorized = (message = 'missing or invalid credentials') => new ApiError(401, 'unauthorized', message);
export const conflict = (message: string) => new ApiError(409, 'conflict', message);
