/**
 * `POST /channels/{id}/messages[/{subtopic}]?auth=<device key>[&retain]`: authenticate, authorize
 * publish, reassemble Block1 blocks if any, then `platform.publish`, and answer 2.04 Changed only
 * once the channel actor has stored the message. 2.04 rather than 2.01: a message appends to the
 * channel's stream and gets no URI of its own to put in Location-Path (RFC 7252 §5.8.2).
 */
import { Code, contentFormat, contentTypeOf, size1, type Block, type CoapMessage, type CoapOption } from '../../shared/coap';
import type { Address } from '../../shared/topics';
import type { PublishOutcome } from '../platform/types';
import { uploadKey } from './blockwise';
import type { Context } from './context';
import type { Exchange } from './message-layer';
import { diagnostic, platformStatus, tooLarge, tooManyRequests } from './replies';

/** `?retain`, `?retain=true|1` → true; absent, `false`, `0` → false (as the HTTP API's `?retain=`). */
export function retainFlag(v: string | undefined): boolean | null {
  if (v === undefined || v === 'false' || v === '0') return false;
  if (v === '' || v === 'true' || v === '1') return true;
  return null;
}

/** The platform's retry hint on a 429, when it gives one (the HTTP API does; see docs/coap.md "Contract"). */
function retryAfterOf(o: PublishOutcome): number | undefined {
  const v = 'retryAfter' in o ? (o as { retryAfter?: unknown }).retryAfter : undefined;
  return typeof v === 'number' && v >= 0 ? v : undefined;
}

/** `continuing`: a later block of an upload in progress, which the request rates do not count (resources.ts). */
export async function publish(ctx: Context, ex: Exchange, req: CoapMessage, addr: Address, query: Map<string, string>, block: Block | undefined, continuing = false): Promise<void> {
  const { limits, auth, platform } = ctx;
  const cf = contentFormat(req);
  // No Content-Format (RFC 7252 §5.10.3 leaves the format to the application): '' asks the channel
  // for its defaultContentType (application/octet-stream, opaque bytes, unless set).
  const contentType = cf === undefined ? '' : contentTypeOf(cf);
  if (contentType === undefined) return ex.respond(diagnostic(Code.UnsupportedContentFormat, `Content-Format ${cf} is not supported`));
  const retain = retainFlag(query.get('retain'));
  if (retain === null) return ex.respond(diagnostic(Code.BadRequest, 'retain must be true or false'));
  if (!block && req.payload.length > limits.maxPayloadBytes) return ex.respond(tooLarge(limits, `payload exceeds ${limits.maxPayloadBytes} bytes`));

  const principal = await auth.principal(ex.epKey, query.get('auth'));
  const wait = continuing ? 0 : ctx.rate.take(`principal:${principal.id}`);
  if (wait > 0) return ex.respond(tooManyRequests(wait));
  await auth.authorize(principal, addr.channel, 'messages:publish');
  auth.active(principal);

  let payload = req.payload;
  let options: CoapOption[] = [];
  if (block) {
    const step = ctx.uploads.receive(uploadKey(ex.epKey, req), ex.token, block, req.payload, size1(req));
    if (step.kind !== 'complete') return ex.respond(step.reply);
    payload = step.payload;
    options = step.options;
  }
  const outcome = await platform.publish({ channel: addr.channel, subtopic: addr.subtopic, publisher: principal.id, protocol: 'coap', contentType, payload, retain });
  if (outcome.ok) return ex.respond({ code: Code.Changed, options });
  ex.respond(platformStatus(outcome.status, outcome.message, limits, retryAfterOf(outcome)));
}
