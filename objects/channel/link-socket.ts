import { bytesOf } from '../../shared/cbor';
import { LinkError, decodeLinkFrame, linkDialect, type ActorOp, type LinkOp, type LinkPublish, type LinkSubscribe } from '../../shared/link';
import { compileFilter, subtopicProblem } from '../../shared/topics';
import { catchUp } from './catchup';
import type { ChannelCore } from './core';
import { messageOp, regive, sendLinkOps, sharedOp } from './fanout';
import { TAG_LINK, type LinkAttachment } from './sockets';
import { fail, type PublishInput, type PublishResult } from './types';

/**
 * The bridge link (shared/link.ts): one socket, many subscriptions (kept in SQLite by socket id)
 * and publishes. Ops in a frame are handled in order; a run of consecutive publishes is one
 * batch (one transaction, one fan-out frame per link); replies go out in one frame per request
 * frame, flushed before each publish run so a suback always precedes that subscription's messages.
 */
export function acceptLink(core: ChannelCore, subprotocol?: string): Response {
  const { 0: client, 1: server } = new WebSocketPair();
  core.ctx.acceptWebSocket(server, [TAG_LINK]);
  const dialect = linkDialect(subprotocol);
  const att: LinkAttachment = { kind: 'link', id: crypto.randomUUID(), ...(dialect.refs ? { refs: true } : {}), ...(dialect.qos ? { qos: true } : {}), ...(dialect.mqtt5 ? { mqtt5: true } : {}), ...(dialect.share ? { share: true } : {}) };
  core.sockets.remember(server, att);
  const headers = new Headers();
  if (subprotocol) headers.set('sec-websocket-protocol', subprotocol);
  return new Response(null, { status: 101, webSocket: client, headers });
}

const toInput = (op: LinkPublish): PublishInput => {
  const input: PublishInput = { subtopic: op.subtopic, publisher: op.publisher, protocol: op.protocol, contentType: op.contentType, payload: op.payload, retain: op.retain };
  if (op.properties) input.properties = op.properties;
  if (op.expiry !== undefined) input.expiry = op.expiry;
  if (op.format !== undefined) input.format = op.format;
  if (op.responseTopic !== undefined) input.responseTopic = op.responseTopic;
  if (op.correlation !== undefined) input.correlation = op.correlation;
  if (op.qos !== undefined) input.qos = op.qos;
  if (op.origin !== undefined) input.origin = op.origin;
  return input;
};

/**
 * `out`: answers (sent first, outside the window); `after`: group deliveries handed over on joining,
 * sent after the answers (the suback first) and counted against the link's window like live ones.
 */
function subscribe(core: ChannelCore, att: LinkAttachment, op: LinkSubscribe, out: ActorOp[], after: ActorOp[]): void {
  const problem = subtopicProblem(op.filter, 'subscribe');
  if (problem) {
    out.push({ op: 'error', code: 'invalid_filter', reason: problem, sub: op.sub });
    return;
  }
  // A No Local token never starts with U+0001: that is how a shared group is kept in its column (store.ts SHARE_PREFIX).
  if (op.noLocal?.startsWith('\u0001')) {
    out.push({ op: 'error', code: 'invalid_no_local', reason: 'a noLocal token may not start with U+0001', sub: op.sub });
    return;
  }
  const existing = core.sockets.linkSubs(core.store, att.id);
  if (!existing.some((s) => s.sub === op.sub) && existing.length >= core.config.maxLinkSubscriptions) {
    out.push({ op: 'error', code: 'too_many_subscriptions', reason: `at most ${core.config.maxLinkSubscriptions} subscriptions per link`, sub: op.sub });
    return;
  }
  // Same id again replaces the subscription, like a repeated MQTT SUBSCRIBE [MQTT-3.8.4-3]. A shared
  // group is named only on a v5 link (the one whose bridge settles by frame); no No Local with it [MQTT-3.8.3-4].
  const share = att.share === true && op.share !== undefined ? op.share : null;
  const back = core.shares.leave(att.id, op.sub);
  core.store.putLinkSub(att.id, { sub: op.sub, filter: op.filter, noLocal: share === null ? (op.noLocal ?? null) : null, share });
  core.sockets.forgetLink(att.id);
  out.push({ op: 'suback', sub: op.sub, seq: core.store.lastSeq });
  const now = Date.now();
  if (share !== null) {
    // No retained messages for a shared subscription [MQTT-3.3.1-3 (5.0): only new non-shared ones], and
    // no replay: what the group's other links took is theirs, and what no link took is its orphans.
    for (const x of core.shares.join(att.id, op.sub, share, op.filter, now)) after.push(sharedOp(core, x, now));
    regive(core, back);
    return;
  }
  regive(core, back);
  const request = { match: compileFilter(op.filter), noLocal: op.noLocal ?? null, ...(op.since === undefined ? {} : { since: op.since }) };
  for (const item of catchUp(core.store, core.config, request, now)) {
    out.push(item.kind === 'gap' ? { op: 'gap', sub: op.sub, from: item.from, to: item.to } : messageOp(item.message, [op.sub], item.retained, now));
  }
}

function handleOp(core: ChannelCore, ws: WebSocket, att: LinkAttachment, op: LinkOp, out: ActorOp[], after: ActorOp[]): void {
  switch (op.op) {
    case 'subscribe':
      subscribe(core, att, op, out, after);
      return;
    case 'unsubscribe':
      core.store.deleteLinkSub(att.id, op.sub);
      core.sockets.forgetLink(att.id);
      out.push({ op: 'unsuback', sub: op.sub });
      // A shared subscription's unsettled deliveries go to the group's other links (its bridge gave them up).
      regive(core, core.shares.leave(att.id, op.sub));
      return;
    case 'consumed':
      core.flow.acked(ws, op.seq);
      return;
    case 'settled':
      core.shares.settled(att.id, op.frames);
      // Room on this link: what the groups kept goes out now.
      regive(core, []);
      return;
    default:
      out.push({ op: 'error', code: 'unexpected_op', reason: `${op.op} is sent by the channel actor, not to it` });
  }
}

export async function onLinkMessage(core: ChannelCore, ws: WebSocket, att: LinkAttachment, data: string | ArrayBuffer): Promise<void> {
  if (typeof data === 'string') {
    sendLinkOps(core, ws, [{ op: 'error', code: 'bad_frame', reason: 'link frames are binary CBOR, not text' }]);
    return;
  }
  let ops: LinkOp[];
  try {
    ops = decodeLinkFrame(bytesOf(data));
  } catch (e) {
    if (!(e instanceof LinkError)) throw e;
    sendLinkOps(core, ws, [{ op: 'error', code: 'bad_frame', reason: e.message }]);
    return;
  }
  let out: ActorOp[] = [];
  let after: ActorOp[] = [];
  const flush = () => {
    if (out.length > 0) sendLinkOps(core, ws, out);
    if (after.length > 0) sendLinkOps(core, ws, after, true);
    out = [];
    after = [];
  };
  // Every publish of the frame is answered, whatever fails: the bridge holds further publishes
  // until its frames are answered, so an unanswered one would stall the channel for all its devices.
  try {
    for (let i = 0; i < ops.length; ) {
      const op = ops[i] as LinkOp;
      if (op.op !== 'publish') {
        try {
          handleOp(core, ws, att, op, out, after);
        } catch (e) {
          out.push({ op: 'error', code: 'internal_error', reason: reasonOf(e), ...('sub' in op ? { sub: op.sub } : {}) });
        }
        i++;
        continue;
      }
      const run: LinkPublish[] = [];
      for (; i < ops.length && ops[i]?.op === 'publish'; i++) run.push(ops[i] as LinkPublish);
      flush();
      let results: PublishResult[];
      try {
        results = await core.publish(run.map(toInput));
      } catch (e) {
        // Not stored, or stored but not confirmed: the device retries (at-least-once).
        results = run.map(() => fail(503, 'channel_unavailable', `not confirmed: ${reasonOf(e)}; retry`));
      }
      results.forEach((r, k) => {
        const id = (run[k] as LinkPublish).id;
        out.push(r.ok ? { op: 'ack', id, seq: r.seq, created: r.created } : { op: 'nack', id, status: r.status, code: r.code, reason: r.message });
      });
    }
  } finally {
    flush();
  }
}

const reasonOf = (e: unknown): string => (e instanceof Error ? e.message : String(e)).slice(0, 200);
