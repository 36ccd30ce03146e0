import { AUTHORIZE_BATCH } from '../../shared/authorize';
import { principalIdentity, type Principal } from '../../shared/principal';
import { AuthorizeBatcher, type AuthorizeAnswer } from './authorize-batch';
import { PlatformError, workerUrlNow, type Decision, type MessageAction, type WorkerUrl } from './types';

/**
 * The bridge's client for the workers' /internal API (BRIDGE_SECRET-authenticated).
 *
 * Answers are cached so a reconnect storm or a chatty device does not turn into a D1 query per
 * packet. What bounds how long a revoked key or a removed connection keeps working:
 *  - every `changesPollMs` the bridge asks which orgs had their access data written since it last
 *    asked (POST /internal/access/changes, one small query however many devices are connected),
 *    and forgets what it cached for those orgs at once; `accessVersion` tells connections to ask again;
 *  - while those answers keep coming, a decision is trusted up to `trustedTtlMs`; when they stop
 *    (a worker without the route, the platform unreachable), only up to `cacheTtlMs`, as before;
 *  - never past the credential's own `exp`.
 *
 * Questions to /internal/authorize raised in one event-loop turn — every session of an org asks
 * when it changes — leave as one batch request per 100 principals (authorize-batch.ts); each is
 * cached, and counted stale, exactly as if it had been asked alone.
 */
export interface InternalApiOptions {
  workerUrl: WorkerUrl;
  bridgeSecret: string;
  /** How long answers are trusted without news of changes, ms (default 5000). */
  cacheTtlMs?: number;
  /** How often to ask which orgs' access changed, ms (default 1000). */
  changesPollMs?: number;
  /** How long a decision is trusted while the changes are followed, ms (default 60000): the bound for changes made behind the API's back. */
  trustedTtlMs?: number;
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
  /** Calls waiting at most (default 10000); beyond, a call fails at once with 503 (a device retries; a re-check is asked again later). */
  maxQueued?: number;
}

interface Cached<T> {
  value: T;
  /** When it was asked for. */
  at: number;
  /** `changes` when it was asked for: a change to its org after that makes it stale. */
  seen: number;
  /** Its org (the principal's), for per-org forgetting. */
  org: string | undefined;
  /** The credential's expiry, ms (Infinity: none). */
  exp: number;
}

const CACHE_MAX = 50_000;

/** Why a fetch failed: runtimes put the socket's error (ECONNREFUSED, a timeout) in `cause`. */
function reason(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = e.cause instanceof Error ? ((e.cause as Error & { code?: string }).code ?? e.cause.message) : undefined;
  return cause && !e.message.includes(cause) ? `${e.message} (${cause})` : e.message;
}

/** A body from elsewhere (an HTML page, say), cut for an error message. */
const cut = (s: string, max = 200): string => (s.length > max ? `${s.slice(0, max)}… (${s.length} chars)` : s);

const orgOf = (p: Principal): string | undefined => (p.kind === 'user' ? undefined : p.orgId);
const expiryOf = (p: Principal): number => (p.kind !== 'device' && p.exp !== undefined ? p.exp * 1000 : Infinity);

export class InternalApi {
  private readonly auth = new Map<string, Cached<Principal>>();
  private readonly decisions = new Map<string, Cached<Decision>>();
  /** Whether a credential is still good (null) or why not, per principal; and the questions under way. */
  private readonly credentials = new Map<string, Cached<string | null>>();
  private readonly credentialAsks = new Map<string, { asked: Promise<string | null>; seen: number }>();
  private readonly ttl: number;
  private readonly pollMs: number;
  private readonly trustedTtl: number;
  /** Forgettings so far; `everyoneAt` and `orgAt` say at which count each org was last forgotten. */
  private changes = 0;
  private everyoneAt = 0;
  private readonly orgAt = new Map<string, number>();
  /** The sequence number of the last answer about changes (undefined: none yet); kept when a question fails, so the next names what changed meanwhile. */
  private epoch: number | undefined;
  /** Decisions may be trusted past `cacheTtlMs` until then (the last answer about changes, plus a margin). */
  private followingUntil = 0;
  /** When the worker last answered the question about changes (ms; undefined: never yet). The bridge's readiness (bridge/ops). */
  answeredAt: number | undefined;
  private poller: ReturnType<typeof setTimeout> | undefined;
  private polling: Promise<void> | undefined;
  private closed = false;
  private readonly listeners = new Set<(org: string | undefined) => void>();
  private readonly doFetch: typeof fetch;
  private readonly now: () => number;
  private readonly maxInFlight: number;
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly maxQueued: number;
  /** Questions to /internal/authorize raised in one turn leave as one batch request. */
  private readonly batcher: AuthorizeBatcher;

  constructor(private readonly opts: InternalApiOptions) {
    this.ttl = opts.cacheTtlMs ?? 5000;
    this.pollMs = Math.max(50, opts.changesPollMs ?? 1000);
    this.trustedTtl = Math.max(this.ttl, opts.trustedTtlMs ?? 60_000);
    this.doFetch = opts.fetch ?? fetch;
    this.now = opts.now ?? Date.now;
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? 32);
    this.maxQueued = Math.max(0, opts.maxQueued ?? 10_000);
    this.batcher = new AuthorizeBatcher((path, body) => this.call(path, body), this.now);
  }

  /** Calls waiting for a free slot (for tests and stats). */
  get queued(): number {
    return this.waiting.length;
  }

  private async call<T>(path: string, body: unknown): Promise<T> {
    if (this.inFlight >= this.maxInFlight) {
      if (this.waiting.length >= this.maxQueued) throw new PlatformError(503, 'platform busy: too many questions waiting');
      await new Promise<void>((go) => this.waiting.push(go));
    } else this.inFlight++;
    try {
      return await this.send<T>(path, body);
    } finally {
      // The slot passes straight to the next waiter, if any.
      const next = this.waiting.shift();
      if (next) next();
      else this.inFlight--;
    }
  }

  private async send<T>(path: string, body: unknown, timeoutMs?: number): Promise<T> {
    let res: Response;
    const post = () =>
      this.doFetch(`${workerUrlNow(this.opts.workerUrl)}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.opts.bridgeSecret}` },
        body: JSON.stringify(body),
        ...(timeoutMs !== undefined ? { signal: AbortSignal.timeout(timeoutMs) } : {}),
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
      let paths: string[] | undefined;
      let code: string | undefined;
      try {
        const problem = JSON.parse(text) as { detail?: string; errors?: unknown; code?: unknown };
        detail = problem.detail ?? text;
        if (typeof problem.code === 'string') code = problem.code;
        if (Array.isArray(problem.errors)) paths = problem.errors.map((e) => String((e as { path?: unknown } | null)?.path ?? ''));
      } catch {
        /* not JSON */
      }
      // A 401/403 that is not the worker's problem JSON (no `code`: a proxy's or access layer's page
      // in front of the worker) refuses neither the bridge nor a device's credential: the worker was
      // not reached, as when a socket is refused — tried again, "try later" to a device.
      if ((res.status === 401 || res.status === 403) && code === undefined) throw new PlatformError(503, `platform unreachable: HTTP ${res.status}${text ? `: ${cut(text)}` : ''}`);
      // 5xx from the worker means "try later" to a device, not "bad credentials".
      throw new PlatformError(res.status >= 500 ? 503 : res.status, detail, paths, code);
    }
    return JSON.parse(text) as T;
  }

  /** Starts following access changes (every `changesPollMs`, the first at once). */
  start(): void {
    if (this.poller !== undefined || this.closed) return;
    const loop = () => {
      this.poller = setTimeout(() => void this.pollChanges().finally(() => !this.closed && loop()), this.pollMs);
      this.poller.unref?.();
    };
    this.poller = setTimeout(() => void this.pollChanges().finally(() => !this.closed && loop()), 0);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.poller);
  }

  /**
   * Asks which orgs' access changed since the last answer and forgets what was cached for them.
   * When the question fails, changes are no longer followed: cached answers fall back to
   * `cacheTtlMs` until an answer comes, which — asked since the last number seen — names the orgs
   * that changed meanwhile, so their sessions are still told.
   */
  pollChanges(): Promise<void> {
    return (this.polling ??= (async () => {
      const asked = this.now();
      try {
        // Bounded: a question that hangs must not stop the following for good (undici waits minutes).
        const r = await this.send<{ epoch: number; orgs: string[]; all: boolean }>('/internal/access/changes', { since: this.epoch ?? null }, Math.max(this.ttl, 2 * this.pollMs));
        const unknown = r.all || this.epoch === undefined;
        if (unknown) this.forget(undefined);
        else for (const org of r.orgs) this.forget(org);
        this.epoch = r.epoch;
        this.answeredAt = asked;
        this.followingUntil = asked + Math.max(this.ttl, 3 * this.pollMs);
        // Listeners hear of known changes only. "Anything may have changed" (the first answer, too
        // many orgs, a database recreated) is left to each session's next packet: told, every
        // session of the bridge would ask at once.
        if (!unknown) for (const org of r.orgs) this.tell(org);
      } catch {
        this.followingUntil = 0;
      } finally {
        this.polling = undefined;
      }
    })());
  }

  /** Whether access changes are followed: the worker answered within the bound decisions are trusted for. */
  get following(): boolean {
    return this.followingUntil > this.now();
  }

  /** Calls `listener` after an org's cached answers are forgotten because its access changed. Returns the way to stop. */
  onAccessChange(listener: (org: string | undefined) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private tell(org: string | undefined): void {
    for (const l of this.listeners) {
      try {
        l(org);
      } catch {
        /* a listener's failure is its own */
      }
    }
  }

  /** Forgets cached answers for one org's principals (undefined: everyone's). */
  private forget(org: string | undefined): void {
    this.changes++;
    if (org === undefined) this.everyoneAt = this.changes;
    else this.orgAt.set(org, this.changes);
    if (this.orgAt.size > CACHE_MAX) {
      this.orgAt.clear();
      this.everyoneAt = this.changes;
    }
  }

  private changedAt(org: string | undefined): number {
    const o = org === undefined ? 0 : (this.orgAt.get(org) ?? 0);
    return o > this.everyoneAt ? o : this.everyoneAt;
  }

  /**
   * Moves whenever what was cached for this principal's org is forgotten (a change to its access
   * data): a connection that keeps its own copy of a decision asks again when this is not what it
   * was when it asked.
   */
  accessVersion(principal: Principal): number {
    return this.changedAt(orgOf(principal));
  }

  private fresh<T>(c: Cached<T> | undefined, now: number): c is Cached<T> {
    if (!c || now >= c.exp || this.changedAt(c.org) > c.seen) return false;
    const age = now - c.at;
    return age < this.ttl || (now < this.followingUntil && age < this.trustedTtl);
  }

  private remember<T>(map: Map<string, Cached<T>>, key: string, value: T, principal: Principal, at: number, seen: number): void {
    if (map.size >= CACHE_MAX) map.clear();
    map.set(key, { value, at, seen, org: orgOf(principal), exp: expiryOf(principal) });
  }

  async authenticate(username: string | undefined, password: string): Promise<Principal> {
    const key = `${username ?? ''}\u0000${password}`;
    const hit = this.auth.get(key);
    const now = this.now();
    // Only `cacheTtlMs`: a reconnect is rare, and a key may be refused for reasons no org change shows.
    if (this.fresh(hit, now) && now - hit.at < this.ttl) return hit.value;
    const seen = this.changes;
    const { principal } = await this.call<{ principal: Principal }>('/internal/authenticate', { username, password });
    this.remember(this.auth, key, principal, principal, now, seen);
    return principal;
  }

  async authorize(principal: Principal, checks: { channel: string; action: MessageAction }[]): Promise<Decision[]> {
    const t = this.now();
    // Per principalIdentity, not per id: a rotated key's refusal must not reach the new key's connections, nor the reverse.
    const who = principalIdentity(principal);
    const keyOf = (c: { channel: string; action: string }) => `${who}\u0000${c.channel}\u0000${c.action}`;
    const known = new Map<string, Decision>();
    const missing = checks.filter((c) => {
      const hit = this.decisions.get(keyOf(c));
      if (!this.fresh(hit, t)) return true;
      known.set(keyOf(c), hit.value);
      return false;
    });
    // Counted before asking: a change forgotten while the answer is on its way makes the answer stale too.
    const seen = this.changes;
    const asks: Promise<AuthorizeAnswer>[] = [];
    for (let i = 0; i < missing.length; i += AUTHORIZE_BATCH.checksPerItem) asks.push(this.batcher.ask({ principal, checks: missing.slice(i, i + AUTHORIZE_BATCH.checksPerItem) }));
    for (const { results } of await Promise.all(asks)) {
      for (const d of results) {
        known.set(keyOf(d), d);
        this.remember(this.decisions, keyOf(d), d, principal, t, seen);
      }
    }
    return checks.map((c) => known.get(keyOf(c))!);
  }

  /**
   * Whether the credential is still good (null) or why not: an authorize with no checks. Asked on an
   * org's access change by every idle session of it, so one question per principal is shared (and
   * the questions of different principals leave in one batch), and its answer kept until the org
   * changes again (or the usual bound).
   */
  async credentialRefusal(principal: Principal): Promise<string | null> {
    const who = principalIdentity(principal);
    const t = this.now();
    const hit = this.credentials.get(who);
    if (this.fresh(hit, t)) return hit.value;
    // A question asked before the org's latest change is not shared: its answer may predate it.
    const under = this.credentialAsks.get(who);
    if (under && this.changedAt(orgOf(principal)) <= under.seen) return under.asked;
    const seen = this.changes;
    const asked = this.batcher.ask({ principal, checks: [] }).then((r) => {
      const reason = r.refused ? r.refused.reason : null;
      this.remember(this.credentials, who, reason, principal, t, seen);
      return reason;
    });
    const entry = { asked, seen };
    this.credentialAsks.set(who, entry);
    const done = () => {
      if (this.credentialAsks.get(who) === entry) this.credentialAsks.delete(who);
    };
    asked.then(done, done);
    return asked;
  }

  async channelsFor(principal: Principal, action: MessageAction): Promise<string[]> {
    const { channels } = await this.call<{ channels: string[] }>('/internal/channels', { principal, action });
    return channels;
  }

  async channelDefaults(channel: string): Promise<{ defaultContentType: string }> {
    return this.call<{ defaultContentType: string }>('/internal/channel-defaults', { channel });
  }

  /** `at`: when the bridge saw it (default now); the worker ignores a report older than one it has. */
  async presence(deviceId: string, online: boolean, at = this.now()): Promise<void> {
    await this.call(`/internal/devices/${encodeURIComponent(deviceId)}/presence`, { online, at, ...(this.opts.bridgeId ? { bridge: this.opts.bridgeId } : {}) });
  }

  /**
   * This bridge (re)started at `at`: whatever it had online before then is not any more. Bounded (a
   * worker that takes the connection and never answers must not hold the bridge's start for minutes).
   */
  async resetPresence(at = this.now(), timeoutMs = 10_000): Promise<void> {
    if (this.opts.bridgeId) await this.send(`/internal/bridges/${encodeURIComponent(this.opts.bridgeId)}/reset`, { at }, timeoutMs);
  }

}
