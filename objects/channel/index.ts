import { DurableObject } from 'cloudflare:workers';
import { ConfigError, type ChannelConfig } from './config';
import { ChannelCore, ChannelIdError } from './core';
import { onSocketClose, onSocketError, onSocketMessage } from './events';
import { handleFetch } from './fetch';
import { fail, type ChannelInfo, type PublishInput, type PublishResult } from './types';

export type { ChannelConfig } from './config';
export { HEADER_CHANNEL, HEADER_LINK, HEADER_SUBSCRIBER, type SubscriberOptions } from './sockets';
export type { ChannelInfo, PublishInput, PublishResult } from './types';

/**
 * One actor per channel (docs/channel-actor.md). Entry points are thin and not meant to be
 * overridden: each hands off to a named handler. Initialisation (schema, counters, config) runs
 * once in blockConcurrencyWhile, so no event ever sees a half-initialised actor.
 */
export class ChannelActor extends DurableObject<Env> {
  private readonly core: ChannelCore;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.core = new ChannelCore(ctx, env);
    void ctx.blockConcurrencyWhile(async () => {
      this.core.init();
      await this.core.retention.resume();
    });
    // The runtime answers "ping" with "pong" itself, without waking a hibernated actor.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair('ping', 'pong'));
  }

  /** WebSocket upgrades for subscribers and bridge links (headers set by the worker). */
  override async fetch(request: Request): Promise<Response> {
    return handleFetch(this.core, request);
  }

  /**
   * Publishes a batch (one transaction); one result per item, in order. `channel` is the channel
   * id. Errors are values, never exceptions, so every caller handles them the same way.
   */
  async publish(batch: PublishInput[], channel?: string): Promise<PublishResult[]> {
    try {
      this.core.bindChannel(channel);
    } catch (e) {
      if (!(e instanceof ChannelIdError)) throw e;
      return batch.map(() => fail(400, 'channel_unknown', e.message));
    }
    return this.core.publish(batch);
  }

  /** Overrides some limits of this channel (persisted); returns the effective configuration. */
  async configure(channel: string, patch: Partial<ChannelConfig>): Promise<{ ok: true; config: ChannelConfig } | { ok: false; message: string }> {
    try {
      this.core.bindChannel(channel);
      return { ok: true, config: await this.core.configure(patch) };
    } catch (e) {
      if (e instanceof ChannelIdError || e instanceof ConfigError) return { ok: false, message: e.message };
      throw e;
    }
  }

  /**
   * The org's access changed (the worker, after the write): every live subscriber's principal is
   * asked about again now (access.ts `recheckAll`). Returns how many principals were asked about.
   */
  async recheckSubscribers(channel: string): Promise<number> {
    if (!this.serves(channel)) return 0;
    this.core.rechecks++;
    const asked = this.core.access.recheckAll();
    this.core.live.sync(); // none left (a row from before a restart): the row goes
    return asked;
  }

  /** The channel was deleted: close its subscribers (4404) and forget everything (core.ts `retire`). */
  async retire(channel: string): Promise<void> {
    if (this.serves(channel)) await this.core.retire();
  }

  /** What applies to a message published without a content type (the bridge checks wills with it); null: not this channel's actor. */
  async defaults(channel: string): Promise<{ defaultContentType: string } | null> {
    return this.serves(channel) ? { defaultContentType: this.core.config.defaultContentType } : null;
  }

  /** Binds the channel id (core.bindChannel); false when this actor is not that channel's. */
  private serves(channel: string): boolean {
    try {
      this.core.bindChannel(channel);
      return true;
    } catch (e) {
      if (e instanceof ChannelIdError) return false;
      throw e;
    }
  }

  /** Counters for operators and tests. */
  async info(): Promise<ChannelInfo> {
    return this.core.info();
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    await onSocketMessage(this.core, ws, message);
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    onSocketClose(this.core, ws, code);
  }

  override async webSocketError(ws: WebSocket, error: unknown): Promise<void> {
    onSocketError(this.core, ws, error);
  }

  /**
   * The backstop (or a back-off retry): closes the subscribers whose credential has run out
   * (access.ts), drains the outbox to D1/R2, after any drain under way, unless a failed drain is
   * backing off when its turn comes (core.drain); then the retention sweep, when one is due (retention.ts), and
   * the alarm for the next credential expiry.
   */
  override async alarm(): Promise<void> {
    this.core.alarmFired();
    this.core.access.closeExpired();
    try {
      await this.core.drainOnAlarm();
    } finally {
      await this.core.retention.onAlarm();
      await this.core.access.armExpiry();
    }
  }
}
