import { EdgefluxError, errorFrom } from './errors';
import type { Tokens } from './types';

/** OAuth 2.0 client credentials (RFC 6749 §4.4): they have no refresh token; a new access token is asked for with them. */
export interface AppCredentials {
  client_id: string;
  client_secret: string;
  /** Space-separated scopes asked for, if fewer than the app's. */
  scope?: string;
}

/** Who the client is: a user session (refreshable), an app (renewed with its client credentials), a bearer credential, or a device. */
export interface Credential {
  token?: string;
  refreshToken?: string;
  deviceKey?: string;
  app?: AppCredentials;
}

export interface HttpOptions extends Credential {
  /** Base URL of the API, e.g. http://127.0.0.1:8787 */
  url: string;
  /** A fetch to use instead of the global one (a service binding's fetch in a worker, a test's). */
  fetch?: (input: Request) => Promise<Response>;
  /** Called whenever login or an automatic refresh yields new tokens, so they can be stored. */
  onTokens?: (tokens: Tokens) => void;
}

type Query = Record<string, string | number | boolean | undefined | null>;
export interface RequestOptions {
  query?: Query;
  /** JSON body (objects) or raw body (string, bytes, Blob…) with `contentType`. */
  json?: unknown;
  body?: BodyInit;
  contentType?: string;
  accept?: string;
  /** false: send no credential (register, log in, refresh). */
  auth?: boolean;
  headers?: Record<string, string>;
}

/** The HTTP core every resource group uses: base URL, credentials, refresh on 401, one error type. */
export class Http {
  readonly base: string;
  credential: Credential;
  private readonly fetchImpl: (input: Request) => Promise<Response>;
  private readonly onTokens: ((tokens: Tokens) => void) | undefined;
  private refreshing: Promise<void> | null = null;

  constructor(opts: HttpOptions) {
    this.base = opts.url.replace(/\/+$/, '');
    this.credential = { token: opts.token, refreshToken: opts.refreshToken, deviceKey: opts.deviceKey };
    this.fetchImpl = opts.fetch ?? ((r) => fetch(r));
    this.onTokens = opts.onTokens;
  }

  /** The Authorization header value for the current credential, if any. */
  authorization(): string | undefined {
    if (this.credential.deviceKey) return `Device ${this.credential.deviceKey}`;
    if (this.credential.token) return `Bearer ${this.credential.token}`;
    return undefined;
  }

  url(path: string, query?: Query): string {
    const u = new URL(this.base + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== null) u.searchParams.set(k, String(v));
    return u.toString();
  }

  setTokens(tokens: Tokens): void {
    this.credential = { token: tokens.access_token, refreshToken: tokens.refresh_token };
    this.onTokens?.(tokens);
  }

  /** Trades the refresh token for new tokens (an app: asks for a new token with its client credentials); concurrent callers share one refresh. */
  refresh(): Promise<void> {
    const app = this.credential.app;
    if (app) {
      this.refreshing ??= this.json<{ access_token: string }>('POST', '/oauth/token', { json: { grant_type: 'client_credentials', ...app }, auth: false })
        .then((t) => void (this.credential = { token: t.access_token, app }))
        .finally(() => (this.refreshing = null));
      return this.refreshing;
    }
    const rt = this.credential.refreshToken;
    if (!rt) return Promise.reject(EdgefluxError.local(401, 'no_refresh_token', 'no refresh token: log in again'));
    this.refreshing ??= this.json<Tokens>('POST', '/tokens/refresh', { json: { refresh_token: rt }, auth: false })
      .then((t) => this.setTokens(t))
      .finally(() => (this.refreshing = null));
    return this.refreshing;
  }

  /** The request as is, through the configured fetch: no credential, no error mapping. */
  raw(req: Request): Promise<Response> {
    return this.fetchImpl(req);
  }

  async fetch(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const send = async () => {
      const headers = new Headers(opts.headers);
      const auth = opts.auth === false ? undefined : this.authorization();
      if (auth) headers.set('authorization', auth);
      if (opts.accept) headers.set('accept', opts.accept);
      let body = opts.body;
      if (opts.json !== undefined) {
        body = JSON.stringify(opts.json);
        headers.set('content-type', 'application/json');
      } else if (opts.contentType) headers.set('content-type', opts.contentType);
      try {
        return await this.fetchImpl(new Request(this.url(path, opts.query), { method, headers, body: body ?? null }));
      } catch (e) {
        // Node's fetch says only "fetch failed"; the reason (ECONNREFUSED, a DNS failure…) is its cause.
        const cause = e instanceof Error && e.cause instanceof Error ? ` (${e.cause.message})` : '';
        throw EdgefluxError.local(0, 'network_error', `${method} ${this.base}${path}: ${e instanceof Error ? e.message : String(e)}${cause}`);
      }
    };
    let res = await send();
    // An expired session: refresh once and retry (a user session or an app; keys and devices cannot).
    if (res.status === 401 && opts.auth !== false && (this.credential.refreshToken || this.credential.app) && !this.credential.deviceKey) {
      await res.body?.cancel();
      await this.refresh();
      res = await send();
    }
    if (!res.ok) throw await errorFrom(res);
    return res;
  }

  async json<T>(method: string, path: string, opts?: RequestOptions): Promise<T> {
    const res = await this.fetch(method, path, opts);
    return (await res.json()) as T;
  }

  async none(method: string, path: string, opts?: RequestOptions): Promise<void> {
    const res = await this.fetch(method, path, opts);
    await res.body?.cancel();
  }
}

/** `/a/b` from path segments, each percent-encoded (so `+` and `#` in a subtopic survive). */
export const segments = (...parts: string[]): string => parts.map((p) => '/' + encodeURIComponent(p)).join('');
/** A subtopic (`a/b/+`) as path segments, or nothing. */
export const subtopicPath = (subtopic?: string): string => (subtopic ? segments(...subtopic.split('/').filter((s) => s !== '')) : '');
