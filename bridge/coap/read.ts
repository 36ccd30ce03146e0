/**
 * A plain GET on a channel address (no Observe): the latest retained message matching the address
 * (2.05), or 2.05 with an empty payload when there is none (docs/coap.md "Decisions"); 2.03 Valid
 * when the client's ETag is that message's. Max-Age `readMaxAgeS` (0). Block2
 * follow-ups (NUM > 0) are served from the representation whose first block was sent, so every
 * block of one transfer comes from the same message (RFC 7959 §2.4).
 */
import { Code, Opt, blockSize, contentTypeOf, decodeBlock, type Block } from '../../shared/coap';
import type { Delivery } from '../platform/types';
import { blockReply, type Representation } from './blockwise';
import type { Context } from './context';
import type { Exchange } from './message-layer';
import type { ObserveTarget } from './observe';
import { diagnostic, etagOf, maxAgeOption } from './replies';
import { deliveryRepresentation, emptyRepresentation, formatOfDelivery, latest } from './representation';

/** Sends block `block2` of `rep` (keeping `rep` for the next blocks), or 4.02 past its end. */
export function sendBlocks(ctx: Context, ex: Exchange, repKey: string, rep: Representation, block2: Block | undefined): void {
  const reply = blockReply(rep, block2, ctx.limits);
  if (!reply) {
    ex.respond(diagnostic(Code.BadOption, `block ${block2?.num ?? 0} is past the end of the ${rep.payload.length}-byte representation`));
    return;
  }
  const opt = reply.options?.find((o) => o.number === Opt.Block2);
  const sent = opt ? decodeBlock(opt.value) : undefined;
  const more = sent?.more ?? false;
  if (sent && more) ctx.reps.keep(repKey, rep, (sent.num + 1) * blockSize(sent.szx));
  ex.respond(reply);
  if (!more && block2 && block2.num > 0 && ctx.reps.get(repKey) === rep) ctx.reps.served(repKey);
}

/**
 * `validators`: the request's ETag options (the representations the client holds). `kept`: false
 * for a notification's follow-up on its observation's own request (observe.ts `fetch`) that found
 * no notification in blocks: it is read afresh, never answered from another request's representation.
 */
export async function read(ctx: Context, ex: Exchange, target: ObserveTarget, accept: number | undefined, block2: Block | undefined, validators: readonly Uint8Array[] = [], kept = true): Promise<void> {
  // A notification's later blocks fetched with another request (GET + Block2 without Observe, RFC
  // 7959 §2.6 / §3.4, as libcoap does) come from the representation kept for this endpoint, path and
  // query (target.repKey: another auth= is another request).
  const rep = kept && block2 && block2.num > 0 ? ctx.reps.get(target.repKey) : undefined;
  if (rep) return sendBlocks(ctx, ex, target.repKey, rep, block2);
  const ds: Delivery[] = [];
  const sub = await ctx.platform.subscribe({ channel: target.channel, filter: target.filter }, (d) => ds.push(d));
  sub.close();
  const acceptable = accept === undefined ? ds : ds.filter((d) => formatOfDelivery(d) === accept);
  if (acceptable.length === 0 && ds.length > 0) {
    // RFC 7252 §5.10.4: the current representation is not in the format the client accepts.
    ex.respond(diagnostic(Code.NotAcceptable, `the latest message is not ${contentTypeOf(accept ?? -1) ?? `Content-Format ${accept}`}`));
    return;
  }
  const d = latest(acceptable);
  const maxAge = ctx.limits.readMaxAgeS;
  // RFC 7252 §5.10.6.2: the client holds this message already (its ETag is the seq): 2.03 Valid, no payload.
  if (d && (!block2 || block2.num === 0)) {
    const tag = etagOf(d.seq).value;
    if (validators.some((v) => sameBytes(v, tag))) return ex.respond({ code: Code.Valid, options: [etagOf(d.seq), maxAgeOption(maxAge)] });
  }
  sendBlocks(ctx, ex, target.repKey, d ? deliveryRepresentation(d, ctx.limits, maxAge) : emptyRepresentation(ctx.limits, maxAge), block2);
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
