import type { Problem } from './types';

/**
 * The one error the SDK throws: the API's problem document (RFC 9457) — or one made up in the
 * same shape for what never reached the API (network failure, an unreadable answer).
 */
export class EdgefluxError extends Error {
  readonly status: number;
  readonly code: string;
  readonly detail: string;
  readonly problem: Problem;

  constructor(problem: Problem) {
    super(problem.detail || problem.title);
    this.name = 'EdgefluxError';
    this.status = problem.status;
    this.code = problem.code;
    this.detail = problem.detail;
    this.problem = problem;
  }

  /** A problem the SDK itself reports (status 0 when no HTTP answer was involved). */
  static local(status: number, code: string, detail: string): EdgefluxError {
    return new EdgefluxError({ type: 'about:blank', title: code, status, code, detail });
  }
}

const isProblem = (b: unknown): b is Problem =>
  typeof b === 'object' && b !== null && typeof (b as Problem).status === 'number' && typeof (b as Problem).code === 'string' && typeof (b as Problem).detail === 'string';

/** Turns a failed answer into an EdgefluxError: problem+json as is, OAuth errors (RFC 6749 §5.2) mapped, anything else wrapped. */
export async function errorFrom(res: Response): Promise<EdgefluxError> {
  const text = await res.text().catch(() => '');
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON */
  }
  if (isProblem(body)) return new EdgefluxError(body);
  const oauth = body as { error?: unknown; error_description?: unknown } | null;
  if (oauth && typeof oauth.error === 'string') {
    return new EdgefluxError({ type: 'about:blank', title: oauth.error, status: res.status, code: oauth.error, detail: typeof oauth.error_description === 'string' ? oauth.error_description : oauth.error });
  }
  return new EdgefluxError({ type: 'about:blank', title: res.statusText || `HTTP ${res.status}`, status: res.status, code: 'http_error', detail: text.slice(0, 500) || `HTTP ${res.status}` });
}
