/**
 * The console's HTTP + WebSocket client. Types are inferred from the zod schemas the workers validate
 * with, so an API change that breaks the console breaks `npm run typecheck`.
 */
import type { z } from '@hono/zod-openapi';
import type { App, AppWithSecret } from '../../workers/apps/schemas';
import type { Channel } from '../../workers/channels/schemas';
import type { Connection, ConnectedChannel, ConnectedDevice, ConnectionType } from '../../workers/connections/schemas';
import type { Device, DeviceWithKey, KeyRotated } from '../../workers/devices/schemas';
import type { ApiKey, ApiKeyWithSecret } from '../../workers/keys/schemas';
import type { Member, Org, RoleSchema } from '../../workers/orgs/schemas';
import type { Tokens, User } from '../../workers/users/schemas';
import type { EnvelopeJson } from '../../shared/envelope';

export type Device = z.infer<typeof Device>;
export type DeviceWithKey = z.infer<typeof DeviceWithKey>;
export type Channel = z.infer<typeof Channel>;
export type App = z.infer<typeof App>;
export type AppWithSecret = z.infer<typeof AppWithSecret>;
export type ApiKey = z.infer<typeof ApiKey>;
export type ApiKeyWithSecret = z.infer<typeof ApiKeyWithSecret>;
export type Org = z.infer<typeof Org>;
export type Member = z.infer<typeof Member>;
export type Role = z.infer<typeof RoleSchema>;
export type Tokens = z.infer<typeof Tokens>;
export type User = z.infer<typeof User>;
export type Connection = z.infer<typeof Connection>;
export type ConnectionType = z.infer<typeof ConnectionType>;
export type ConnectedDevice = z.infer<typeof ConnectedDevice>;
export type ConnectedChannel = z.infer<typeof ConnectedChannel>;
export type { EnvelopeJson };

export interface Page<T> {
  total: number;
  offset: number;
  limit: number;
  items: T[];
}
export interface PageQuery {
  offset?: number;
  limit?: number;
}
export interface ListQuery extends PageQuery {
  name?: string;
  /** A JSON object the metadata must contain, as text. */
  metadata?: string;
}
/** GET /channels/{id}/messages filters (docs/query.md); values are sent as given. */
export type MessageQuery = Record<string, string | number | undefined>;

/** An RFC 9457 problem answer. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface ClientOptions {
  baseUrl: string;
  /** The current bearer credential (read on every call, so a refreshed token is picked up). */
  token?: () => string | undefined;
  /** Called once on a 401; resolves true when a new token is in place and the call may be retried. */
  onUnauthorized?: () => Promise<boolean>;
}

type Query = object;
const qs = (q: Query = {}) => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q) as [string, unknown][]) if (v !== undefined && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
};
const seg = encodeURIComponent;

export function createClient(opts: ClientOptions) {
  async function send(method: string, path: string, init: { body?: unknown; query?: Query; accept?: string; raw?: BodyInit; contentType?: string } = {}, retried = false): Promise<Response> {
    const headers: Record<string, string> = { accept: init.accept ?? 'application/json' };
    const token = opts.token?.();
    if (token) headers.authorization = `Bearer ${token}`;
    let body: BodyInit | undefined = init.raw;
    if (init.body !== undefined) {
      body = JSON.stringify(init.body);
      headers['content-type'] = 'application/json';
    }
    if (init.contentType) headers['content-type'] = init.contentType;
    const res = await fetch(`${opts.baseUrl}${path}${qs(init.query)}`, { method, headers, body });
    if (res.status === 401 && !retried && token && opts.onUnauthorized && (await opts.onUnauthorized())) return send(method, path, init, true);
    if (!res.ok) {
      const p = (await res.json().catch(() => null)) as { code?: string; detail?: string; title?: string } | null;
      throw new ApiError(res.status, p?.code ?? 'http_error', p?.detail ?? p?.title ?? `${method} ${path}: ${res.status}`);
    }
    return res;
  }
  const json = async <T>(method: string, path: string, init?: Parameters<typeof send>[2]): Promise<T> => {
    const res = await send(method, path, init);
    return (res.status === 204 ? undefined : await res.json()) as T;
  };
  const crud = <T, Created, Q extends PageQuery, Create, Update>(base: (org: string) => string) => ({
    list: (org: string, q?: Q) => json<Page<T>>('GET', base(org), { query: q }),
    get: (org: string, id: string) => json<T>('GET', `${base(org)}/${seg(id)}`),
    create: (org: string, body: Create) => json<Created>('POST', base(org), { body }),
    update: (org: string, id: string, body: Update) => json<T>('PATCH', `${base(org)}/${seg(id)}`, { body }),
    remove: (org: string, id: string) => json<void>('DELETE', `${base(org)}/${seg(id)}`),
  });
  type Named = { name?: string; metadata?: Record<string, unknown> };
  type Scoped = { name?: string; scopes?: string[] };

  return {
    users: {
      register: (body: { email: string; password: string }) => json<User>('POST', '/users', { body }),
      me: () => json<User & { orgs: { id: string; name: string; role: string }[] }>('GET', '/users/me'),
    },
    tokens: {
      login: (body: { email: string; password: string }) => json<Tokens>('POST', '/tokens', { body }),
      refresh: (refresh_token: string) => json<Tokens>('POST', '/tokens/refresh', { body: { refresh_token } }),
      revoke: (refresh_token: string) => json<void>('POST', '/tokens/revoke', { body: { refresh_token } }),
    },
    orgs: {
      list: (q?: PageQuery) => json<Page<Org>>('GET', '/orgs', { query: q }),
      create: (body: { name: string }) => json<Org>('POST', '/orgs', { body }),
      update: (org: string, body: { name: string }) => json<Org>('PATCH', `/orgs/${seg(org)}`, { body }),
      remove: (org: string) => json<void>('DELETE', `/orgs/${seg(org)}`),
    },
    members: {
      list: (org: string, q?: PageQuery) => json<Page<Member>>('GET', `/orgs/${seg(org)}/members`, { query: q }),
      add: (org: string, body: { email: string; role: Role }) => json<Member>('POST', `/orgs/${seg(org)}/members`, { body }),
      setRole: (org: string, user: string, role: Role) => json<void>('PATCH', `/orgs/${seg(org)}/members/${seg(user)}`, { body: { role } }),
      remove: (org: string, user: string) => json<void>('DELETE', `/orgs/${seg(org)}/members/${seg(user)}`),
    },
    devices: {
      ...crud<Device, DeviceWithKey, ListQuery, Named & { name: string }, Named>((org) => `/orgs/${seg(org)}/devices`),
      rotateKey: (org: string, id: string) => json<z.infer<typeof KeyRotated>>('POST', `/orgs/${seg(org)}/devices/${seg(id)}/key`),
      channels: (org: string, id: string, q?: PageQuery) => json<Page<ConnectedChannel>>('GET', `/orgs/${seg(org)}/devices/${seg(id)}/channels`, { query: q }),
    },
    channels: {
      ...crud<Channel, Channel, ListQuery, Named & { name: string }, Named>((org) => `/orgs/${seg(org)}/channels`),
      devices: (org: string, id: string, q?: PageQuery) => json<Page<ConnectedDevice>>('GET', `/orgs/${seg(org)}/channels/${seg(id)}/devices`, { query: q }),
    },
    connections: {
      connect: (org: string, body: { channel_ids: string[]; device_ids: string[]; types?: ConnectionType[] }) =>
        json<{ connections: Connection[] }>('POST', `/orgs/${seg(org)}/connections`, { body }),
      disconnect: (org: string, body: { channel_ids: string[]; device_ids: string[] }) => json<void>('DELETE', `/orgs/${seg(org)}/connections`, { body }),
    },
    apps: {
      ...crud<App, AppWithSecret, PageQuery, Scoped & { name: string; scopes: string[] }, Scoped>((org) => `/orgs/${seg(org)}/apps`),
      rotateSecret: (org: string, id: string) => json<AppWithSecret>('POST', `/orgs/${seg(org)}/apps/${seg(id)}/secret`),
    },
    keys: {
      list: (org: string, q?: PageQuery) => json<Page<ApiKey>>('GET', `/orgs/${seg(org)}/keys`, { query: q }),
      issue: (org: string, body: { name: string; scopes: string[]; expires_in?: number }) => json<ApiKeyWithSecret>('POST', `/orgs/${seg(org)}/keys`, { body }),
      revoke: (org: string, id: string) => json<void>('DELETE', `/orgs/${seg(org)}/keys/${seg(id)}`),
    },
    messages: {
      publish: (channel: string, payload: string, o: { subtopic?: string; contentType?: string } = {}) =>
        json<{ seq: number; created: number }>('POST', `/channels/${seg(channel)}/messages${o.subtopic ? `/${o.subtopic}` : ''}`, { raw: payload, contentType: o.contentType ?? 'text/plain' }),
      query: <T = Record<string, unknown>>(channel: string, q: MessageQuery = {}) => json<Page<T> & { aggregation?: string; interval?: number }>('GET', `/channels/${seg(channel)}/messages`, { query: q }),
      csv: async (channel: string, q: MessageQuery = {}) => (await send('GET', `/channels/${seg(channel)}/messages`, { query: q, accept: 'text/csv' })).text(),
      subscribe: (channel: string, handlers: SubscribeHandlers, o: { subtopic?: string; since?: number } = {}) => subscribe(opts, channel, handlers, o),
    },
  };
}

export type Client = ReturnType<typeof createClient>;

export interface SubscribeHandlers {
  message: (m: EnvelopeJson & { retained?: boolean }) => void;
  gap?: (g: { from: number; to: number }) => void;
  state?: (s: 'connecting' | 'open' | 'closed', detail?: string) => void;
}

/**
 * A WebSocket subscription that reconnects (1 s, 2 s, … up to 15 s) and resumes after the last seq it
 * delivered (`since`), so a dropped connection loses nothing the channel still keeps.
 * The credential travels as a `bearer.<token>` subprotocol: browsers cannot set headers on WebSockets.
 */
function subscribe(opts: ClientOptions, channel: string, handlers: SubscribeHandlers, o: { subtopic?: string; since?: number }): { close: () => void } {
  let last = o.since;
  let ws: WebSocket | undefined;
  let closed = false;
  let delay = 1000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const open = () => {
    const url = new URL(`${opts.baseUrl || location.origin}/channels/${seg(channel)}/messages${o.subtopic ? `/${o.subtopic}` : ''}`);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    if (last !== undefined) url.searchParams.set('since', String(last));
    const token = opts.token?.();
    handlers.state?.('connecting');
    ws = new WebSocket(url, token ? [`bearer.${token}`] : []);
    ws.onopen = () => {
      delay = 1000;
      handlers.state?.('open');
    };
    ws.onmessage = (e) => {
      if (typeof e.data !== 'string') return;
      const f = JSON.parse(e.data) as { type: string } & Record<string, unknown>;
      if (f.type === 'message') {
        const m = f as unknown as EnvelopeJson & { retained?: boolean };
        if (last !== undefined && m.seq <= last) return; // replayed twice across a reconnect
        last = m.seq;
        handlers.message(m);
      } else if (f.type === 'gap') handlers.gap?.(f as unknown as { from: number; to: number });
    };
    ws.onclose = (e) => {
      if (closed) return;
      handlers.state?.('closed', e.reason || `code ${e.code}`);
      timer = setTimeout(open, delay);
      delay = Math.min(delay * 2, 15_000);
    };
  };
  open();
  return {
    close: () => {
      closed = true;
      clearTimeout(timer);
      ws?.close(1000);
    },
  };
}
