import { principalIdentity, type Principal } from '../../shared/principal';
import { PlatformError, workerUrlNow, type Decision, type MessageAction, type WorkerUrl } from './types';

/**
 * The bridge's client for the workers' /internal API (BRIDGE_SECRET-authenticated).
 * Answers are cached briefly so a reconnect storm or a chatty device does not turn into a
 * D1 query per packet; the TTL bounds how long a revoked key or removed connection keeps working.
 */
export interface InternalApiOptions {
  workerUrl: WorkerUrl;
  bridgeSecret: string;
  /** How long authentication and authorization answers are trusted, ms (default 5000). */
  cacheTtlMs?: number;
  /** This bridge's name in presence records. */
  bridgeId?: string;
  fetch?: typeof fetch;
  now?: () => number;
  /**
   * Calls in flight at once (default 32); more wait their turn. A reconnect storm of a thousand
   * devices is then a queue on a few keep-alive connections, not a thousand new sockets to the
   * worker at the same moment (which a local worker refused: "fetch failed").
   */
  maxInFlight?: number;
}

interface Cached<T> {
  value: T;
  until: number;
}

const CACHE_MAX = 50_000;

/** Why a fetch failed: runtimes put the socket's error (ECONNREFUSED, a timeout) in `cause`. */
function reason(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = e.cause instanceof Error ? ((e.cause as Error & { code?: string }).code ?? e.cause.message) : undefined;
  return cause && !e.message.includes(cause) ? `${e.message} (${cause})` : e.message;
}

export class InternalApi {
  private readonly auth = new Map<string, Cached<Principal>>();
  private readonly decisions = new Map<string, Cached<Decision>>();
  private readonly ttl: number;
  private readonly doFetch: typeof fetch;
  private readonly now: () => number;
  private readonly maxInFlight: number;
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly opts: InternalApiOptions) {
    this.ttl = opts.cacheTtlMs ?? 5000;
    this.doFetch = opts.fetch ?? fetch;
    this.now = opts.now ?? Date.now;
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? 32);
  }

  /** Calls waiting for a free slot (for tests and stats). */
  get queued(): number {
    return this.waiting.length;
  }

  private async call<T>(path: string, body: unknown): Promise<T> {
    if (this.inFlight >= this.maxInFlight) await new Promise<void>((go) => this.waiting.push(go));
    else this.inFlight++;
    try {
      return await this.send<T>(path, body);
    } finally {
      // The slot passes straight to the next waiter, if any.
      const next = this.waiting.shift();
      if (next) next();
      else this.inFlight--;
    }
  }

  private async send<T>(path: string, body: unknown): Promise<T> {
    let res: Response;
    const post = () =>
      this.doFetch(`${workerUrlNow(this.opts.workerUrl)}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.opts.bridgeSecret}` },
        body: JSON.stringify(body),
      });
    try {
      res = await post().catch((e: unknown) => {
        // A keep-alive connection the worker closed just as the request went out: every call here
        // is a read or an idempotent write, so it is sent once more, on a new connection.
        if (reason(e).includes('UND_ERR_SOCKET') || reason(e).includes('ECONNRESET')) return post();
        throw e;
      });
    } catch (e) {
      throw new PlatformError(503, `platform unreachable: ${reason(e)}`);
    }
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    if (!res.ok) {
      let detail = text;
      try {
        detail = (JSON.parse(text) as { detail?: string }).detail ?? text;
      } catch {
        /* not JSON */
      }
      // 5xx from the worker means "try later" to a device, not "bad credentials".
      throw new PlatformError(res.status >= 500 ? 503 : res.status, detail);
    }
    return JSON.parse(text) as T;
  }

  private remember<T>(map: Map<string, Cached<T>>, key: string, value: T): void {
    if (map.size >= CACHE_MAX) map.clear();
    map.set(key, { value, until: this.now() + this.ttl });
  }

  async authenticate(username: string | undefined, password: string): Promise<Principal> {
    const key = `${username ?? ''}\u0000${password}`;
    const hit = this.auth.get(key);
    if (hit && hit.until > this.now()) return hit.value;
    const { principal } = await this.call<{ principal: Principal }>('/internal/authenticate', { username, password });
    this.remember(this.auth, key, principal);
    return principal;
  }

  async authorize(principal: Principal, checks: { channel: string; action: MessageAction }[]): Promise<Decision[]> {
    const t = this.now();
    // Per principalIdentity, not per id: a rotated key's refusal must not reach the new key's connections, nor the reverse.
    const who = principalIdentity(principal);
    const keyOf = (c: { channel: string; action: string }) => `${who}\u0000${c.channel}\u0000${c.action}`;
    const missing = checks.filter((c) => !((this.decisions.get(keyOf(c))?.until ?? 0) > t));
    if (missing.length) {
      for (let i = 0; i < missing.length; i += 100) {
        const { results } = await this.call<{ results: Decision[] }>('/internal/authorize', { principal, checks: missing.slice(i, i + 100) });
        for (const d of results) this.remember(this.decisions, keyOf(d), d);
      }
    }
    return checks.map((c) => this.decisions.get(keyOf(c))!.value);
  }

  async channelsFor(principal: Principal, action: MessageAction): Promise<string[]> {
    const { channels } = await this.call<{ channels: string[] }>('/internal/channels', { principal, action });
    return channels;
  }

  async presence(deviceId: string, online: boolean): Promise<void> {
    await this.call(`/internal/devices/${encodeURIComponent(deviceId)}/presence`, { online, at: this.now(), ...(this.opts.bridgeId ? { bridge: this.opts.bridgeId } : {}) });
  }

  /** This bridge (re)started: whatever it had online before is not any more. */
  async resetPresence(): Promise<void> {
    if (this.opts.bridgeId) await this.call(`/internal/bridges/${encodeURIComponent(this.opts.bridgeId)}/reset`, { at: this.now() });
  }
}
