import { encodeServerFrame, type FrameEncoding, type ServerFrame } from '../../shared/frames';
import { encodeLinkFrame, type ActorOp, type LinkMessage } from '../../shared/link';
import type { Window } from './config';
import { CLOSE_TRY_AGAIN_LATER, bufferedAmount } from './flow';
import type { ChannelCore } from './core';
import type { Given } from './shares';
import { TAG_LINK, TAG_SUBSCRIBER } from './sockets';
import { isLocal, type ChannelMessage } from './types';

/** Target size of one link frame: many ops per WebSocket message, well under the 1 MiB inbound limit of a peer actor. */
const LINK_FRAME_BYTES = 256 * 1024;

/** Closes without throwing (the socket may already be closing); RFC 6455 §5.5 caps the reason at 123 bytes. */
export function closeSocket(core: ChannelCore, ws: WebSocket, code: number, reason: string): void {
  try {
    ws.close(code, reason.slice(0, 120));
  } catch {
    /* already closed */
  }
  core.socketGone(ws);
}

/** Sends one WebSocket message; a socket whose send throws is closed (1011) and reported false. */
export function send(core: ChannelCore, ws: WebSocket, data: string | Uint8Array): boolean {
  if (ws.readyState !== WebSocket.READY_STATE_OPEN) return false;
  try {
    ws.send(data);
    return true;
  } catch (e) {
    closeSocket(core, ws, 1011, `send failed: ${e instanceof Error ? e.message : String(e)}`);
    return false;
  }
}

export function sendFrame(core: ChannelCore, ws: WebSocket, frame: ServerFrame, encoding: FrameEncoding): boolean {
  return send(core, ws, encodeServerFrame(frame, encoding));
}

/** After a live delivery: is this socket behind by more than its window? Then drop it (see flow.ts). */
function overWindow(core: ChannelCore, ws: WebSocket, flowControlled: boolean, seq: number, bytes: number, window: Window): boolean {
  let why: string | null = null;
  if (flowControlled) why = core.flow.sent(ws, seq, bytes, window);
  const buffered = bufferedAmount(ws);
  if (!why && buffered !== null && buffered > window.bytes) why = `slow consumer: ${buffered} bytes buffered`;
  if (!why) return false;
  closeSocket(core, ws, CLOSE_TRY_AGAIN_LATER, why);
  return true;
}

export function messageOp(m: ChannelMessage, subs: number[], retained: boolean, now: number): LinkMessage {
  const op: LinkMessage = { op: 'message', subs, envelope: m.envelope, retained };
  if (m.properties) op.properties = m.properties;
  // The publisher's RETAIN, for MQTT 5 Retain As Published (retained replays are flagged by `retained`).
  if (m.retain) op.retain = true;
  // The QoS it was published with: the bridge delivers at min(published, granted) [MQTT-3.8.4-8].
  if (m.qos !== undefined) op.qos = m.qos;
  // What its MQTT 5 publisher said beyond the envelope, unaltered [MQTT-3.3.2-4, -15, -16, -20] (v4 links only: sendLinkOps).
  if (m.format !== undefined) op.format = m.format;
  if (m.responseTopic !== undefined) op.responseTopic = m.responseTopic;
  if (m.correlation !== undefined) op.correlation = m.correlation;
  // MQTT 5 §3.3.2.3.3: forward the remaining lifetime, not the original one.
  if (m.expiresAt !== undefined) op.expiry = Math.max(0, Math.ceil((m.expiresAt - now) / 1000));
  return op;
}

const opBytes = (op: ActorOp): number => (op.op === 'message' ? op.envelope.payload.length + 128 + op.subs.length * 5 : 64);

/**
 * Sends ops to a link socket, several frames if they are large; `live` deliveries count against the
 * window. A frame holding shared-group deliveries starts with its number (`frame`, link v5) and is
 * remembered with them until the bridge settles it (shares.ts); what the link is not sent after all
 * (it closed, or a send failed) is given to the groups again.
 */
export function sendLinkOps(core: ChannelCore, ws: WebSocket, ops: readonly ActorOp[], live = false): boolean {
  let chunk: ActorOp[] = [];
  let size = 0;
  const att = core.sockets.attachment(ws);
  const link = att?.kind === 'link' ? att : null;
  const linkId = link?.id ?? '';
  const dialect = { refs: link?.refs === true, qos: link?.qos === true, mqtt5: link?.mqtt5 === true };
  const shares = link?.share === true && core.shares.active ? core.shares : null;
  let unsentZero: Given[] = [];
  const flush = (): boolean => {
    if (chunk.length === 0) return true;
    let frame: ActorOp[] = chunk;
    let zero: Given[] = [];
    if (shares) {
      const f = shares.framed(linkId, chunk);
      if (f.no !== null) frame = [{ op: 'frame', no: f.no }, ...chunk];
      if (f.back.length > 0) regive(core, f.back);
      zero = f.zero;
    }
    const ok = send(core, ws, encodeLinkFrame(frame, dialect));
    // QoS 0 deliveries framed (released as given once) but not sent after all: to the group again,
    // with the rest (giveBack), once the link has left its groups.
    if (!ok) unsentZero = zero;
    chunk = [];
    size = 0;
    return ok;
  };
  /** Not sent after all: what `rest` held for groups goes to them again, and a link that cannot be sent to leaves them (or the next pick would be it again). */
  const giveBack = (rest: readonly ActorOp[]): false => {
    if (shares) regive(core, [...shares.unsent(linkId, rest), ...shares.linkGone(linkId), ...unsentZero]);
    return false;
  };
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i] as ActorOp;
    chunk.push(op);
    size += opBytes(op);
    // Closed (its unsettled frames were given again): what it was not sent goes too.
    if (live && op.op === 'message' && overWindow(core, ws, true, op.envelope.seq, opBytes(op), core.config.linkWindow)) return giveBack([...chunk, ...ops.slice(i + 1)]);
    if (size >= LINK_FRAME_BYTES && !flush()) return giveBack(ops.slice(i + 1));
  }
  return flush() || giveBack([]);
}

/** Group deliveries given back (a link closed or unsubscribed, shares.ts): sent to the links the groups pick now. */
export function regive(core: ChannelCore, back: readonly Given[]): void {
  const byLink = core.shares.regive(back);
  if (byLink.size === 0) return;
  const now = Date.now();
  for (const ws of core.ctx.getWebSockets(TAG_LINK)) {
    const att = core.sockets.attachment(ws);
    if (att?.kind !== 'link') continue;
    const given = byLink.get(att.id);
    if (!given) continue;
    byLink.delete(att.id);
    sendLinkOps(core, ws, given.map((x) => sharedOp(core, x, now)), true);
  }
  for (const [id, given] of byLink) unreachable(core, id, given);
}

/** A link picked for group deliveries has no socket here (a link leaves its groups when its socket goes, so this should not be): it leaves them now. */
function unreachable(core: ChannelCore, linkId: string, given: readonly Given[]): void {
  console.warn(`shared groups: link ${linkId} has no socket; its group deliveries go to the others`);
  regive(core, [...core.shares.linkGone(linkId), ...given]);
}

/** A message op for one group delivery, remembered as such (shares.ts `mark`). */
export function sharedOp(core: ChannelCore, x: Given, now: number): LinkMessage {
  const op = messageOp(x.m, [x.sub], false, now);
  core.shares.mark(op, [x]);
  return op;
}

/**
 * Live fan-out of a committed batch, in seq order, synchronously after the commit — so every
 * socket sees every channel's messages in one global order. Each message is encoded at most once
 * per encoding; each link gets one frame for the whole batch listing, per message, the ids of its
 * subscriptions that match.
 */
export function deliver(core: ChannelCore, messages: readonly ChannelMessage[]): void {
  if (messages.length === 0) return;
  const encoded: { json?: string; cbor?: Uint8Array }[] = messages.map(() => ({}));
  const frameOf = (i: number, enc: FrameEncoding): string | Uint8Array => {
    const slot = encoded[i] ?? {};
    const m = messages[i] as ChannelMessage;
    if (enc === 'json') return (slot.json ??= encodeServerFrame({ type: 'message', envelope: m.envelope }, 'json') as string);
    return (slot.cbor ??= encodeServerFrame({ type: 'message', envelope: m.envelope }, 'cbor') as Uint8Array);
  };

  for (const ws of core.ctx.getWebSockets(TAG_SUBSCRIBER)) {
    const s = core.sockets.subscriber(ws);
    if (!s) continue;
    const sendOne = (data: string | Uint8Array, seq: number): boolean => {
      if (!send(core, ws, data)) return false;
      const bytes = typeof data === 'string' ? data.length : data.byteLength;
      return !overWindow(core, ws, s.att.ack, seq, bytes, core.config.subscriberWindow);
    };
    // Its permission (access.ts): asked only for sockets something is sent to; held while asked.
    let admitted: boolean | Promise<boolean> | undefined;
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i] as ChannelMessage;
      if (!s.match(m.envelope.subtopic)) continue;
      admitted ??= core.access.admit(ws, s.att);
      if (admitted === false) break;
      const data = frameOf(i, s.att.encoding);
      if (admitted !== true ? !core.access.hold(ws, admitted, data, m.envelope.seq, sendOne) : !sendOne(data, m.envelope.seq)) break;
    }
  }

  const now = Date.now();
  // Shared groups spanning links (shares.ts): one link of each group per message. With none, one check.
  const picks = core.shares.active ? core.shares.pick(messages, now) : null;
  for (const ws of core.ctx.getWebSockets(TAG_LINK)) {
    const att = core.sockets.attachment(ws);
    if (!att || att.kind !== 'link') continue;
    const subs = core.sockets.linkSubs(core.store, att.id);
    const mine = picks?.get(att.id);
    if (subs.length === 0 && !mine) continue;
    const ops: ActorOp[] = [];
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i] as ChannelMessage;
      const ids: number[] = [];
      for (const s of subs) if (s.share === null && s.match(m.envelope.subtopic) && !isLocal(s.noLocal, m)) ids.push(s.sub);
      const given = mine?.get(i);
      if (given) for (const x of given) ids.push(x.sub);
      if (ids.length === 0) continue;
      const op = messageOp(m, ids, false, now);
      if (given) core.shares.mark(op, given);
      ops.push(op);
    }
    picks?.delete(att.id);
    sendLinkOps(core, ws, ops, true);
  }
  if (picks) for (const [id, mine] of picks) unreachable(core, id, [...mine.values()].flat());
}
