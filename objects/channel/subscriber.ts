import { bytesOf } from '../../shared/cbor';
import { FrameError, decodeClientFrame, type ClientFrame, type FrameId, type ServerFrame } from '../../shared/frames';
import { compileFilter, subscriptionFilter } from '../../shared/topics';
import { catchUp } from './catchup';
import type { ChannelCore } from './core';
import { sendFrame } from './fanout';
import { TAG_SUBSCRIBER, defaultPublishSubtopic, type SubscriberAttachment, type SubscriberOptions } from './sockets';

/**
 * A WebSocket subscriber: one filter (the connection path's subtopic; none = every message),
 * one outgoing encoding (JSON text or CBOR binary frames), optionally allowed to publish.
 */
export function acceptSubscriber(core: ChannelCore, opts: SubscriberOptions): Response {
  const { 0: client, 1: server } = new WebSocketPair();
  core.ctx.acceptWebSocket(server, [TAG_SUBSCRIBER]);
  const att = core.access.remember(
    server,
    { kind: 'subscriber', id: crypto.randomUUID(), publisher: opts.publisher, canPublish: opts.canPublish, subtopic: opts.subtopic, encoding: opts.encoding, ack: opts.ack },
    opts.principal,
  );
  core.access.prefetch(server, att);
  core.live.noteOrg(opts.org);
  core.live.sync();

  // Same turn as acceptWebSocket: nothing published meanwhile can be missed or sent twice.
  // `subscribed` goes first, so a client that loses the socket before any message arrives still
  // has a cursor to resume from (docs/channel-actor.md, "WebSocket frames").
  const since = opts.since === undefined ? {} : { since: opts.since };
  const request = { match: compileFilter(subscriptionFilter(opts.subtopic)), ...since };
  const frames = function* (): Generator<ServerFrame> {
    yield { type: 'subscribed', seq: core.store.lastSeq, ...since };
    for (const item of catchUp(core.store, core.config, request, Date.now())) {
      if (item.kind === 'gap') yield { type: 'gap', from: item.from, to: item.to };
      else yield item.retained ? { type: 'message', envelope: item.message.envelope, retained: true } : { type: 'message', envelope: item.message.envelope };
    }
  };
  for (const frame of frames()) if (!sendFrame(core, server, frame, att.encoding)) break;

  const headers = new Headers();
  // RFC 6455 §4.2.2: answer with one of the offered subprotocols, or browsers fail the handshake.
  if (opts.subprotocol) headers.set('sec-websocket-protocol', opts.subprotocol);
  return new Response(null, { status: 101, webSocket: client, headers });
}

const withId = (id: FrameId | undefined): { id?: FrameId } => (id === undefined ? {} : { id });

async function publishFrame(core: ChannelCore, ws: WebSocket, att: SubscriberAttachment, frame: Extract<ClientFrame, { type: 'publish' }>): Promise<void> {
  const reply = (f: ServerFrame) => sendFrame(core, ws, f, att.encoding);
  if (!att.canPublish || !(await core.access.mayPublish(ws, att))) {
    reply({ type: 'error', ...withId(frame.id), status: 403, code: 'forbidden', message: 'this connection may not publish to the channel' });
    return;
  }
  const subtopic = frame.subtopic ?? defaultPublishSubtopic(att);
  if (subtopic === null) {
    reply({ type: 'error', ...withId(frame.id), status: 400, code: 'subtopic_required', message: 'this connection subscribes with wildcards; name the subtopic to publish to' });
    return;
  }
  const input = { subtopic, publisher: att.publisher, protocol: 'ws' as const, contentType: frame.contentType ?? '', payload: frame.payload, retain: frame.retain === true };
  const [result] = await core.publish([input]);
  if (!result) return;
  if (result.ok) reply({ type: 'ack', ...withId(frame.id), seq: result.seq, created: result.created });
  else reply({ type: 'error', ...withId(frame.id), status: result.status, code: result.code, message: result.message });
}

export async function onSubscriberMessage(core: ChannelCore, ws: WebSocket, att: SubscriberAttachment, data: string | ArrayBuffer): Promise<void> {
  let frame: ClientFrame;
  try {
    frame = decodeClientFrame(typeof data === 'string' ? data : bytesOf(data));
  } catch (e) {
    // FrameError (bad shape) or CborError (bad bytes): both are the client's mistake.
    const message = e instanceof Error ? e.message : String(e);
    sendFrame(core, ws, { type: 'error', ...withId(e instanceof FrameError ? e.id : undefined), status: 400, code: 'bad_frame', message }, att.encoding);
    return;
  }
  if (frame.type === 'ack') core.flow.acked(ws, frame.seq);
  else await publishFrame(core, ws, att, frame);
}
