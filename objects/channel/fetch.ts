import { ChannelIdError, type ChannelCore } from './core';
import { acceptLink } from './link-socket';
import { BadRequest, HEADER_CHANNEL, HEADER_LINK, HEADER_SUBSCRIBER, parseLinkOptions, parseSubscriberOptions } from './sockets';
import { acceptSubscriber } from './subscriber';

/** The actor's answer to a request it cannot serve: the same {status, code, message} a publish error has. */
export const actorError = (status: number, code: string, message: string): Response =>
  Response.json({ ok: false, status, code, message }, { status });

/**
 * HTTP entry: only WebSocket upgrades, which the worker has already authenticated and
 * authorized. It says who and what in internal headers (sockets.ts); the actor trusts them.
 */
export function handleFetch(core: ChannelCore, request: Request): Response {
  try {
    core.bindChannel(request.headers.get(HEADER_CHANNEL));
    if (request.headers.get('upgrade')?.toLowerCase() !== 'websocket') return actorError(426, 'upgrade_required', 'the channel actor only accepts WebSocket upgrades');
    if (core.retired) return actorError(404, 'channel_not_found', 'channel deleted');
    const link = request.headers.get(HEADER_LINK);
    if (link !== null) return acceptLink(core, parseLinkOptions(link).subprotocol);
    const subscriber = request.headers.get(HEADER_SUBSCRIBER);
    if (subscriber !== null) return acceptSubscriber(core, parseSubscriberOptions(subscriber));
    return actorError(400, 'bad_internal_header', `an upgrade needs ${HEADER_SUBSCRIBER} or ${HEADER_LINK}`);
  } catch (e) {
    if (e instanceof BadRequest) return actorError(400, e.code, e.message);
    if (e instanceof ChannelIdError) return actorError(400, 'channel_unknown', e.message);
    throw e;
  }
}
