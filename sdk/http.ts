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
  /**
   * Where other holders of this session keep its newest tokens (the console's localStorage shared
   * by its tabs, the CLI's config file shared by its runs), read before every refresh. A refresh
   * token is good once: refreshing with a copy another holder already used would look like theft
   * and end the session (docs/auth.md), so a newer pair found there is taken instead.
   */
  currentTokens?: () => { access_token?: string; refresh_token?: string } | null | undefined;
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
  private readonly currentTokens: HttpOptions['currentTokens'];
  private refreshing: Promise<'adopted' | 'refreshed'> | null = null;

  constructor(opts: HttpOptions) {
    this.base = opts.url.replace(/\/+$/, '');
    this.credential = { token: opts.token, refreshToken: opts.refreshToken, deviceKey: opts.deviceKey };
    this.fetchImpl = opts.fetch ?? ((r) => fetch(r));
    this.onTokens = opts.onTokens;
    this.currentTokens = opts.currentTokens;
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

  /**
   * Trades the refresh token for new tokens (an app: asks for a new token with its client
   * credentials); concurrent callers share one refresh. 'adopted': another holder of the session
   * had refreshed it already (`currentTokens`), and its newer pair is used instead.
   */
  refresh(): Promise<'adopted' | 'refreshed'> {
    const app = this.credential.app;
    if (app) {
      this.refreshing ??= this.json<{ access_token: string }>('POST', '/oauth/token', { json: { grant_type: 'client_credentials', ...app }, auth: false })
        .then((t) => ((this.credential = { token: t.access_token, app }), 'refreshed' as const))
        .finally(() => (this.refreshing = null));
      return this.refreshing;
    }
    this.refreshing ??= this.refreshSession().finally(() => (this.refreshing = null));
    return this.refreshing;
  }

  /** A newer pair than ours that another holder stored, if any. */
  private newerShared(): { token: string; refreshToken: string } | null {
    const shared = this.currentTokens?.();
    if (!shared?.refresh_token || !shared.access_token || shared.refresh_token === this.credential.refreshToken) return null;
    return { token: shared.access_token, refreshToken: shared.refresh_token };
  }

  private async refreshSession(): Promise<'adopted' | 'refreshed'> {
    for (let attempt = 0; ; attempt++) {
      const newer = this.newerShared();
      if (newer) {
        this.credential = newer;
        return 'adopted';
      }
      const rt = this.credential.refreshToken;
      if (!rt) throw EdgefluxError.local(401, 'no_refresh_token', 'no refresh token: log in again');
      try {
        this.setTokens(await this.json<Tokens>('POST', '/tokens/refresh', { json: { refresh_token: rt }, auth: false }));
        return 'refreshed';
      } catch (e) {
        // Another holder may have used the same token a moment ago ("already used"): its pair
        // reaches the shared store shortly. Look again a few times before giving up.
        // Within the server's leeway (10 s) a retry is refused the same way, never taken for theft:
        // wait up to ~3 s in all for the winner's pair (a slow answer) before giving up.
        if (!(e instanceof EdgefluxError && e.status === 401 && this.currentTokens) || attempt >= 6) throw e;
        await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
      }
    }
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
        // Node's fetch says only "fetch failed"; the reason (ECONNREFUSED, a DNS failure…) is its cause —
        // whose message is empty when every address of a name failed (localhost: ::1 and 127.0.0.1), so its code is said too.
        const c = e instanceof Error && e.cause instanceof Error ? (e.cause as Error & { code?: string }) : null;
        const why = c ? c.message || c.code : '';
        const cause = why ? ` (${why})` : '';
        throw EdgefluxError.local(0, 'network_error', `${method} ${this.base}${path}: ${e instanceof Error ? e.message : String(e)}${cause}`);
      }
    };
    let res = await send();
    // An expired session: refresh once and retry (a user session or an app; keys and devices cannot).
    if (res.status === 401 && opts.auth !== false && (this.credential.refreshToken || this.credential.app) && !this.credential.deviceKey) {
      await res.body?.cancel();
      // A pair adopted from another holder may have aged too: then refresh it, once.
      if ((await this.refresh()) === 'adopted') {
        res = await send();
        if (res.status !== 401) return res.ok ? res : Promise.reject(await errorFrom(res));
        await res.body?.cancel();
        await this.refresh();
      }
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
