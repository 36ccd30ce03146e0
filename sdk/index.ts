/**
 * Edgeflux client SDK: the whole HTTP and WebSocket API, typed from the workers' own schemas.
 * Runs in Node (≥ 20), browsers, Bun, Deno and Cloudflare Workers. Guide: docs/sdk.md.
 */
import { EdgefluxError } from './errors';
import { Http, subtopicPath, type HttpOptions } from './http';
import { orgScope, orgsApi, tokensApi, usersApi, type OrgScope } from './resources';
import { fromBase64, Subscription, toBase64, type PublishOptions, type SubscribeOptions, type WebSocketConstructor } from './subscribe';
import type { AppToken, Bucket, Message, MessageQuery, Published, QueryPage, SenmlRecord, Tokens } from './types';

export { EdgefluxError, Subscription };
export type { OrgScope, PublishOptions, SubscribeOptions, WebSocketConstructor };
export type { WebSocketLike } from './subscribe';
export type * from './types';

export interface EdgefluxOptions extends HttpOptions {
  /** A WebSocket constructor, when the runtime has none and the `ws` package is not wanted. */
  WebSocket?: WebSocketConstructor;
}

type QueryInput = MessageQuery & { subtopic?: string };
const instant = (t: number | string | Date | undefined) => (t instanceof Date ? t.getTime() : t);
const queryParams = (q: QueryInput = {}) => ({ ...q, from: instant(q.from), to: instant(q.to) });

/** Bytes of a message's payload, whichever way the API carried it. */
export const payloadBytes = (m: Pick<Message, 'payload' | 'encoding'>): Uint8Array => (m.encoding === 'base64' ? fromBase64(m.payload) : new TextEncoder().encode(m.payload));

export class Edgeflux {
  private readonly http: Http;
  private readonly WebSocketImpl: WebSocketConstructor | undefined;
  readonly users: ReturnType<typeof usersApi>;
  readonly tokens: ReturnType<typeof tokensApi>;
  readonly orgs: ReturnType<typeof orgsApi>;

  constructor(opts: EdgefluxOptions) {
    this.http = new Http(opts);
    this.WebSocketImpl = opts.WebSocket;
    this.users = usersApi(this.http);
    this.tokens = tokensApi(this.http);
    this.orgs = orgsApi(this.http);
  }

  get url(): string {
    return this.http.base;
  }

  /** The session's refresh token, if the client acts as a user session. */
  get refreshToken(): string | undefined {
    return this.http.credential.refreshToken;
  }

  /** The current access token (after login or refresh), if the client acts as a user, key or app. */
  get token(): string | undefined {
    return this.http.credential.token;
  }

  /** Logs in as a user; the client then uses (and refreshes) this session. */
  async login(email: string, password: string): Promise<Tokens> {
    const tokens = await this.tokens.create(email, password);
    this.http.setTokens(tokens);
    return tokens;
  }

  /**
   * Acts with this session's pair from now on (null: with no credential) without calling
   * `onTokens` — for a pair another holder of the session stored (another tab), see `currentTokens`.
   */
  useTokens(tokens: { access_token: string; refresh_token: string } | null): void {
    this.http.credential = tokens ? { token: tokens.access_token, refreshToken: tokens.refresh_token } : {};
  }

  /** Revokes the session's refresh token and forgets the credential. */
  async logout(): Promise<void> {
    const rt = this.http.credential.refreshToken;
    if (rt) await this.tokens.revoke(rt);
    this.http.credential = {};
  }

  /** Trades the refresh token for new tokens now (requests also do it on their own on a 401). */
  async refresh(): Promise<string | undefined> {
    await this.http.refresh();
    return this.http.credential.token;
  }

  /**
   * Acts as an app from now on: OAuth 2.0 client credentials (RFC 6749 §4.4). The client keeps
   * them, in memory, to ask for a new access token when the current one expires (a request's
   * 401, a subscription's 4401), as a user session is refreshed.
   */
  async appLogin(client_id: string, client_secret: string, scope?: string[]): Promise<AppToken> {
    const app = { client_id, client_secret, ...(scope ? { scope: scope.join(' ') } : {}) };
    const token = await this.http.json<AppToken>('POST', '/oauth/token', { json: { grant_type: 'client_credentials', ...app }, auth: false });
    this.http.credential = { token: token.access_token, app };
    return token;
  }

  /** The resources of one org: devices, channels, connections, apps, keys, policies, members. */
  org(id: string): OrgScope {
    return orgScope(this.http, id);
  }

  health(): Promise<{ status: string; d1: string }> {
    return this.http.json('GET', '/health', { auth: false });
  }

  /** Publishes one message over HTTP. Objects are sent as JSON; strings as text unless `contentType` says otherwise. */
  publish(channel: string, payload: string | Uint8Array | ArrayBuffer | Blob | object, opts: PublishOptions = {}): Promise<Published> {
    let body: BodyInit;
    let contentType = opts.contentType;
    if (typeof payload === 'string') (body = payload), (contentType ??= 'text/plain; charset=utf-8');
    else if (payload instanceof Uint8Array || payload instanceof ArrayBuffer || (typeof Blob !== 'undefined' && payload instanceof Blob)) (body = payload as BodyInit), (contentType ??= 'application/octet-stream');
    else (body = JSON.stringify(payload)), (contentType ??= 'application/json');
    const path = `/channels/${encodeURIComponent(channel)}/messages${subtopicPath(opts.subtopic)}`;
    return this.http.json<Published>('POST', path, { body, contentType, query: opts.retain ? { retain: true } : undefined });
  }

  /** Stored messages (`format` messages, the default), SenML records, JSON documents or aggregates (docs/query.md). */
  query(channel: string, q: QueryInput & { aggregation: NonNullable<MessageQuery['aggregation']> }): Promise<QueryPage<Bucket>>;
  query(channel: string, q: QueryInput & { format: 'senml' }): Promise<QueryPage<SenmlRecord>>;
  query(channel: string, q: QueryInput & { format: 'json' }): Promise<QueryPage<Message & { payload: unknown }>>;
  query(channel: string, q?: QueryInput): Promise<QueryPage<Message>>;
  query(channel: string, q?: QueryInput): Promise<QueryPage<unknown>> {
    return this.http.json('GET', `/channels/${encodeURIComponent(channel)}/messages`, { query: queryParams(q) });
  }

  /**
   * Every item of a listing, page after page by cursor (`next`), without counting `total`: stays
   * as cheap per page on a channel of millions of messages as on a small one. Aggregations page by
   * offset; use `query` for them.
   */
  queryAll(channel: string, q: QueryInput & { format: 'senml' }): AsyncGenerator<SenmlRecord>;
  queryAll(channel: string, q: QueryInput & { format: 'json' }): AsyncGenerator<Message & { payload: unknown }>;
  queryAll(channel: string, q?: QueryInput): AsyncGenerator<Message>;
  async *queryAll(channel: string, q: QueryInput = {}): AsyncGenerator<unknown> {
    if (q.aggregation) throw EdgefluxError.local(400, 'validation_failed', 'queryAll lists messages or records; use query() for aggregations');
    let page = await this.http.json<QueryPage<unknown>>('GET', `/channels/${encodeURIComponent(channel)}/messages`, { query: queryParams({ ...q, total: false }) });
    for (;;) {
      yield* page.items;
      if (!page.next) return;
      // later pages start at the cursor: an offset applies to the first one only
      page = await this.http.json<QueryPage<unknown>>('GET', `/channels/${encodeURIComponent(channel)}/messages`, { query: queryParams({ ...q, offset: undefined, cursor: page.next, total: false }) });
    }
  }

  /** The same query answered as CSV (RFC 4180, header row). */
  async queryCsv(channel: string, q?: QueryInput): Promise<string> {
    const res = await this.http.fetch('GET', `/channels/${encodeURIComponent(channel)}/messages`, { query: queryParams(q), accept: 'text/csv' });
    return res.text();
  }

  /**
   * A whole listing as CSV, page after page by cursor (the answers' Link header), without counting
   * `total`: the header row once, then each page's rows as they arrive. Every page of a kind has
   * the same columns (docs/query.md, CSV), so the chunks join into one table.
   */
  async *queryCsvAll(channel: string, q: QueryInput = {}): AsyncGenerator<string> {
    if (q.aggregation) throw EdgefluxError.local(400, 'validation_failed', 'queryCsvAll lists messages or records; use queryCsv() for aggregations');
    let query: QueryInput = { ...q, total: false };
    for (let first = true; ; first = false) {
      const res = await this.http.fetch('GET', `/channels/${encodeURIComponent(channel)}/messages`, { query: queryParams(query), accept: 'text/csv' });
      const text = await res.text();
      yield first ? text : text.slice(text.indexOf('\r\n') + 2);
      const next = /<([^>]*)>;\s*rel="next"/.exec(res.headers.get('link') ?? '')?.[1];
      const cursor = next ? new URL(next).searchParams.get('cursor') : null;
      if (!cursor) return;
      query = { ...q, offset: undefined, cursor, total: false };
    }
  }

  /** One stored payload, byte for byte, with its content type. */
  async payload(channel: string, seq: number): Promise<{ contentType: string; bytes: Uint8Array }> {
    const res = await this.http.fetch('GET', `/channels/${encodeURIComponent(channel)}/payloads/${seq}`);
    return { contentType: res.headers.get('content-type') ?? 'application/octet-stream', bytes: new Uint8Array(await res.arrayBuffer()) };
  }

  /** Streams a channel over WebSocket, reconnecting and resuming from the last seq (see Subscription). */
  subscribe(channel: string, opts: SubscribeOptions): Subscription {
    return new Subscription(this.http, channel, opts, this.WebSocketImpl);
  }
}

export { fromBase64, toBase64 };
