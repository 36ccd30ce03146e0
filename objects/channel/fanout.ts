import { encodeServerFrame, type FrameEncoding, type ServerFrame } from '../../shared/frames';
import { encodeLinkFrame, type ActorOp, type LinkMessage } from '../../shared/link';
import type { Window } from './config';
import { CLOSE_TRY_AGAIN_LATER, bufferedAmount } from './flow';
import type { ChannelCore } from './core';
import { openLinks, shareTargets } from './shares';
import { TAG_SUBSCRIBER } from './sockets';
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
  // What its MQTT 5 publisher said beyond the envelope, unaltered [MQTT-3.3.2-4, -15, -16, -20] (v4 and newer links only: sendLinkOps).
  if (m.format !== undefined) op.format = m.format;
  if (m.responseTopic !== undefined) op.responseTopic = m.responseTopic;
  if (m.correlation !== undefined) op.correlation = m.correlation;
  // MQTT 5 §3.3.2.3.3: forward the remaining lifetime, not the original one.
  if (m.expiresAt !== undefined) op.expiry = Math.max(0, Math.ceil((m.expiresAt - now) / 1000));
  return op;
}

const opBytes = (op: ActorOp): number => (op.op === 'message' ? op.envelope.payload.length + 128 + op.subs.length * 5 : 64);

/** Sends ops to a link socket, several frames if they are large; `live` deliveries count against the window. */
export function sendLinkOps(core: ChannelCore, ws: WebSocket, ops: readonly ActorOp[], live = false): boolean {
  let chunk: ActorOp[] = [];
  let size = 0;
  const att = core.sockets.attachment(ws);
  const link = att?.kind === 'link' ? att : null;
  const dialect = { refs: link?.refs === true, qos: link?.qos === true, mqtt5: link?.mqtt5 === true };
  const flush = (): boolean => {
    if (chunk.length === 0) return true;
    const ok = send(core, ws, encodeLinkFrame(chunk, dialect));
    chunk = [];
    size = 0;
    return ok;
  };
  for (const op of ops) {
    chunk.push(op);
    size += opBytes(op);
    if (live && op.op === 'message' && overWindow(core, ws, true, op.envelope.seq, opBytes(op), core.config.linkWindow)) return false;
    if (size >= LINK_FRAME_BYTES && !flush()) return false;
  }
  return flush();
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
  const links = openLinks(core);
  // Shared groups across links (shares.ts): each message to one subscription of each matching group.
  const groups = shareTargets(links);
  let picked: Map<WebSocket, Map<number, number[]>> | null = null;
  if (groups.size > 0) {
    picked = new Map();
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i] as ChannelMessage;
      for (const [group, g] of groups) {
        if (!g.match(m.envelope.subtopic)) continue;
        const t = core.shares.pick(group, g.targets);
        core.shares.sent(t.link, t.sub, group, m.envelope.seq);
        let mine = picked.get(t.ws);
        if (!mine) picked.set(t.ws, (mine = new Map()));
        const ids = mine.get(i);
        if (ids) ids.push(t.sub);
        else mine.set(i, [t.sub]);
      }
    }
  }
  for (const { ws, subs } of links) {
    const mine = picked?.get(ws);
    const ops: ActorOp[] = [];
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i] as ChannelMessage;
      const ids: number[] = [];
      for (const s of subs) if (s.group === null && s.match(m.envelope.subtopic) && !isLocal(s.noLocal, m)) ids.push(s.sub);
      const shared = mine?.get(i);
      if (shared) ids.push(...shared);
      if (ids.length > 0) ops.push(messageOp(m, ids, false, now));
    }
    sendLinkOps(core, ws, ops, true);
  }
}

/**
 * Gives the group's messages `seqs` to other subscriptions of the group (not `exceptLink`'s),
 * round-robin, as live deliveries. Returns how many found one: with nobody left in the group (or
 * the channel no longer keeping the message, or it expired) a message is given to nobody.
 */
export function redispatch(core: ChannelCore, group: string, seqs: readonly number[], exceptLink?: string): number {
  if (seqs.length === 0) return 0;
  const g = shareTargets(openLinks(core), exceptLink === undefined ? undefined : { link: exceptLink }).get(group);
  if (!g) return 0;
  const wanted = new Set(seqs);
  const now = Date.now();
  const found = core.store.logFrom(seqs.reduce((a, b) => Math.min(a, b))).filter((m) => wanted.has(m.envelope.seq) && (m.expiresAt === undefined || m.expiresAt > now));
  const perLink = new Map<WebSocket, ActorOp[]>();
  for (const m of found) {
    const t = core.shares.pick(group, g.targets);
    core.shares.sent(t.link, t.sub, group, m.envelope.seq);
    let ops = perLink.get(t.ws);
    if (!ops) perLink.set(t.ws, (ops = []));
    ops.push(messageOp(m, [t.sub], false, now));
  }
  for (const [ws, ops] of perLink) sendLinkOps(core, ws, ops, true);
  return found.length;
}
