import type { Qos } from './codes';
import type { Will } from './wills';
import { systemClock, type Clock } from '../clock';

/**
 * Persistent MQTT sessions (docs/mqtt.md "Sessions"). The bridge keeps no messages: a session is
 * its subscriptions plus, per subscription and channel, a resume cursor — the channel actor keeps a
 * window of recent messages and replays after the cursor (`SubscribeRequest.since`) when the
 * client comes back. What the session store holds is therefore small and bounded: filters,
 * cursors, the packet ids of the unacknowledged deliveries (for DUP redelivery with the same
 * ids [MQTT-4.4.0-1]) and of inbound QoS 2 messages awaiting PUBREL.
 *
 * Sessions are keyed by the principal *and* the client id: two devices that happen to use the
 * same client id never share, resume or take over each other's session.
 */

/** Everything with seq ≤ `since` is done, and so are the seqs in `acked` (above it). */
export interface StoredCursor {
  since: number;
  acked: number[];
}

export interface StoredSubscription {
  /** The filter as the client sent it, `$share/…` included: the subscription's identity [MQTT-3.8.4-3]. */
  topicFilter: string;
  qos: Qos;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
  /** v5 Subscription Identifier (1..268,435,455) the SUBSCRIBE gave it; absent: none [MQTT 5 §3.8.2.1.2]. */
  subscriptionId?: number;
  /** Channel id → cursor. */
  cursors: Record<string, StoredCursor>;
}

/** An outbound QoS 1/2 delivery the client had not completed. */
export interface StoredInflight {
  packetId: number;
  channel: string;
  seq: number;
  qos: 1 | 2;
  /** QoS 2: PUBREC received and PUBREL sent; only PUBREL is resent [MQTT-4.3.3-6, MQTT-4.4.0-1]. */
  released: boolean;
  /** Picked for this shared group (`${group}\0${filter}`); absent: a non-shared subscription's. */
  share?: string;
  /** The Subscription Identifiers it was sent with: the DUP resend carries the same [MQTT-3.3.4-3]. Absent: none. */
  subscriptionIds?: number[];
}

export interface SessionState {
  subscriptions: StoredSubscription[];
  inflight: StoredInflight[];
  /** Inbound QoS 2 packet ids: PUBREC sent, PUBREL not yet received [MQTT-4.3.3-10]. */
  awaitingRelease: number[];
}

/** The connection (or ended connection with a pending will) currently holding a session. */
export interface SessionHolder {
  /**
   * Another connection claimed the session, on this bridge or another: end this one (v5 DISCONNECT
   * 0x8E [MQTT-3.1.4-3]) and write the final state before resolving. A delayed will is cancelled
   * if the session goes on, and sent now if the new connection starts `clean` (the session ends).
   */
  takenOver(opts: { clean: boolean }): Promise<void>;
  /** After release: does this holder still need to hear of a new claim (a pending delayed will)? */
  lingering?(): boolean;
  /** The store lost the holder channel of a live connection (the platform went away): end it. */
  storeLost?(reason: string): void;
}

export interface SessionLease {
  /** Fencing token: writes with an older epoch are ignored. */
  epoch: number;
  /** The stored session, or null (none, expired, or discarded by `clean`). */
  state: SessionState | null;
}

export interface OpenOptions {
  /** How long the session outlives the connection should the bridge vanish without a release (durable stores). */
  expirySeconds?: number;
  /** The connection's will: a durable store publishes it if the bridge vanishes without a release. */
  will?: Will & { publisher: string };
}

export interface SessionStore {
  /**
   * Claims the session `key` for a new connection. The previous holder, if any, is told first
   * (`takenOver`, awaited with a timeout) so its final state is written before this reads it.
   * `clean` discards the stored session [MQTT-3.1.2-4 (5.0)].
   */
  open(key: string, holder: SessionHolder, clean: boolean, opts?: OpenOptions): Promise<SessionLease>;
  /** Writes the state of a live session. Returns false when `epoch` is stale (taken over). */
  save(key: string, epoch: number, state: SessionState): Promise<boolean>;
  /**
   * The connection ended. With `expirySeconds` 0 (or a null state) the session is deleted;
   * otherwise it is kept that long [MQTT-3.1.2-23 (5.0)]. The holder stays registered so a later
   * `open` still notifies it (a pending delayed will). Ignored when `epoch` is stale.
   */
  release(key: string, epoch: number, state: SessionState | null, expirySeconds: number, opts?: ReleaseOptions): Promise<void>;
  /**
   * The store can publish a released connection's will later itself (`ReleaseOptions.willDelay`):
   * a bridge shutting down leaves its connections' delayed wills there instead of dropping them.
   */
  readonly keepsWills?: boolean;
}

export interface ReleaseOptions {
  /**
   * Stores that keep wills (`keepsWills`): publish the will given to `open` after this many
   * seconds, unless the session is claimed first [MQTT-3.1.3-9].
   */
  willDelay?: number;
}

interface Entry {
  epoch: number;
  holder: SessionHolder | null;
  state: SessionState | null;
  /** When the stored state expires (ms), or null while a connection holds it. */
  expiresAt: number | null;
}

const copy = (s: SessionState): SessionState => structuredClone(s);

/** In-process store: sessions survive reconnects to this bridge, not a restart (tests, single node). */
export class MemorySessionStore implements SessionStore {
  private readonly entries = new Map<string, Entry>();
  /** Epochs are global so a deleted-then-recreated session never reuses one. */
  private epochs = 0;

  constructor(
    private readonly clock: Clock = systemClock,
    private readonly takeoverTimeoutMs = 2000,
  ) {}

  async open(key: string, holder: SessionHolder, clean: boolean): Promise<SessionLease> {
    const previous = this.entries.get(key);
    if (previous?.holder) await this.notify(previous.holder, clean);
    const entry = this.entries.get(key) ?? { epoch: 0, holder: null, state: null, expiresAt: null };
    const expired = entry.expiresAt !== null && entry.expiresAt <= this.clock.now();
    const state = clean || expired || !entry.state ? null : copy(entry.state);
    const next: Entry = { epoch: ++this.epochs, holder, state, expiresAt: null };
    this.entries.set(key, next);
    return { epoch: next.epoch, state: state && copy(state) };
  }

  async save(key: string, epoch: number, state: SessionState): Promise<boolean> {
    const e = this.entries.get(key);
    if (!e || e.epoch !== epoch) return false;
    e.state = copy(state);
    return true;
  }

  async release(key: string, epoch: number, state: SessionState | null, expirySeconds: number): Promise<void> {
    const e = this.entries.get(key);
    if (!e || e.epoch !== epoch) return;
    e.state = expirySeconds > 0 && state ? copy(state) : null;
    e.expiresAt = this.clock.now() + expirySeconds * 1000;
    // Forget the entry once it has expired, unless someone claimed it since.
    this.clock.setTimer(expirySeconds * 1000, () => {
      if (this.entries.get(key)?.epoch === epoch) this.entries.delete(key);
    });
  }

  get size(): number {
    return this.entries.size;
  }

  /** Stored session (tests). */
  peek(key: string): SessionState | null {
    const e = this.entries.get(key);
    if (!e?.state || (e.expiresAt !== null && e.expiresAt <= this.clock.now())) return null;
    return copy(e.state);
  }

  private async notify(holder: SessionHolder, clean: boolean): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.takeoverTimeoutMs);
      timer.unref?.();
    });
    try {
      await Promise.race([holder.takenOver({ clean }).catch(() => undefined), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
