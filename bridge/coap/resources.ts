/**
 * Request dispatch, one pipeline per resource (as aedes' handlers): option checks, rate limit,
 * then `/.well-known/core`, `/channels`, and `/channels/{id}/messages[/…]` (POST publishes, GET
 * reads or observes). Every failure becomes a response; nothing is dropped silently.
 */
import {
  Code, Opt, accept, block1, block2, contentTypeOf, etags, getAll, has, observe, optionName, queryParams, recognizedOptions, unrecognizedCritical, uriPath, uriQuery, type Block, type CoapMessage,
} from '../../shared/coap';
import { TopicError, parseSegments, subscriptionFilter } from '../../shared/topics';
import { downloadKey, uploadKey } from './blockwise';
import type { Context } from './context';
import type { Exchange } from './message-layer';
import type { Observers } from './observe';
import { publish } from './publish';
import { read } from './read';
import { diagnostic, errorReply, tooManyRequests } from './replies';
import { discover } from './well-known';

/** Options this server acts on; any other critical option gets 4.02 (RFC 7252 §5.4.1). */
const KNOWN: ReadonlySet<number> = new Set([
  Opt.UriHost, Opt.UriPort, Opt.UriPath, Opt.UriQuery, Opt.ContentFormat, Opt.Accept, Opt.Observe, Opt.ETag,
  Opt.Block1, Opt.Block2, Opt.Size1, Opt.Size2, Opt.ProxyUri, Opt.ProxyScheme, Opt.RequestTag,
]);

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The first Uri-Path or Uri-Query option whose value is not UTF-8 (RFC 7252 §3.2: string options
 * are Net-Unicode). Decoded leniently, different bytes would become one U+FFFD subtopic.
 */
function notUtf8(req: CoapMessage): number | undefined {
  for (const number of [Opt.UriPath, Opt.UriQuery]) {
    for (const value of getAll(req, number)) {
      try {
        strictUtf8.decode(value);
      } catch {
        return number;
      }
    }
  }
  return undefined;
}

export function createRouter(ctx: Context, observers: Observers): (ex: Exchange) => void {
  return (ex) => {
    route(ctx, observers, ex).catch((e: unknown) => {
      // An address that is not a channel's messages is "no such resource"; a bad channel id or subtopic is a bad request.
      if (e instanceof TopicError && e.code === 'invalid_address') ex.respond(diagnostic(Code.NotFound, e.message));
      else ex.respond(errorReply(e, ctx.limits, ctx.log));
    });
  };
}

async function route(ctx: Context, observers: Observers, ex: Exchange): Promise<void> {
  const bad = unrecognizedCritical(ex.request, KNOWN);
  if (bad !== undefined) {
    // §5.4.1: 4.02 for a CON request; a NON one is rejected (RST).
    if (!ex.con) return ex.reject();
    return ex.respond(diagnostic(Code.BadOption, `unrecognized critical option ${optionName(bad)} (${bad})`));
  }
  const req: CoapMessage = { ...ex.request, options: recognizedOptions(ex.request, KNOWN) };
  // §5.4.3: a critical option whose value does not fit its format is treated as unrecognized.
  const malformed = notUtf8(req);
  if (malformed !== undefined) {
    if (!ex.con) return ex.reject();
    return ex.respond(diagnostic(Code.BadOption, `${optionName(malformed)} is not UTF-8 (RFC 7252 §3.2)`));
  }
  if (has(req, Opt.ProxyUri) || has(req, Opt.ProxyScheme)) return ex.respond(diagnostic(Code.ProxyingNotSupported, 'this server is not a proxy')); // §5.7.2
  const path = uriPath(req);
  const pathKey = `/${path.join('/')}`;
  // A URI's "." and ".." segments are removed before it becomes Uri-Path options (§6.4, RFC 3986
  // §5.2.4): they name no resource here, as over HTTP.
  if (path.some((s) => s === '.' || s === '..')) return ex.respond(diagnostic(Code.NotFound, `no resource ${pathKey}: "." and ".." are not path segments`));
  const query = queryParams(req);
  const b1 = block1(req);
  const b2 = block2(req);
  // A block-wise transfer is one request (RFC 7959 §2): a block that moves a transfer in progress on
  // (the next one, at the offset reached) is not counted against the request rates, so a transfer
  // costs one request however small its blocks. Repeats and rewinds are counted: free blocks per
  // transfer are bounded by its size (maxPayloadBytes / 16 bytes at most). A download is kept per
  // endpoint, path and query (downloadKey): a block asked for with another auth= is a new request.
  const discovery = pathKey === '/.well-known/core' || pathKey === '/channels';
  const repKey = downloadKey(ex.epKey, path, uriQuery(req));
  // A notification's later block asked for with its observation's own request (Observe: 0, its
  // token, Block2 NUM > 0: the npm coap package). Only while that observation exists: a client
  // whose registration was refused (answered as a plain read) repeats Observe: 0 on the blocks of
  // that answer too, and they continue that read.
  const followUp = req.code === Code.GET && b2 !== undefined && b2.num > 0 && observe(req) === 0 && observers.observing(ex.epKey, ex.token, repKey);
  const continuing =
    (req.code === Code.POST && b1 !== undefined && ctx.uploads.continues(uploadKey(ex.epKey, req), ex.token, b1)) ||
    (req.code === Code.GET && b2 !== undefined && (followUp ? observers.continues(ex.epKey, ex.token, repKey, b2) : ctx.reps.continues(repKey, b2)));
  if (!continuing) {
    const wait = ctx.rate.take(`endpoint:${ex.epKey}`);
    if (wait > 0) return ex.respond(tooManyRequests(wait));
  }

  if (discovery) {
    if (req.code !== Code.GET) return ex.respond(diagnostic(Code.MethodNotAllowed, `${pathKey} only answers GET`));
    return discover(ctx, ex, req, pathKey === '/channels' ? 'channels' : 'core', b2, repKey);
  }
  if (path[0] !== 'channels') return ex.respond(diagnostic(Code.NotFound, `no resource ${pathKey}`));
  if (req.code === Code.POST || req.code === Code.GET) {
    const problem = queryProblem(req, req.code === Code.POST ? ['auth', 'retain'] : ['auth']);
    if (problem) return ex.respond(diagnostic(Code.BadRequest, problem));
  }
  if (req.code === Code.POST) return publish(ctx, ex, req, parseSegments(path, 'publish'), query, b1, continuing);
  // §5.8: an unsupported method is 4.05.
  if (req.code !== Code.GET) return ex.respond(diagnostic(Code.MethodNotAllowed, 'use POST to publish, GET (with Observe) to read or subscribe'));
  return get(ctx, observers, ex, req, path, repKey, query, b2, continuing, followUp);
}

/** A misspelt or repeated query option is an error, not ignored (`?retian=true`, a second `auth`). */
function queryProblem(req: CoapMessage, allowed: readonly string[]): string | null {
  const seen = new Set<string>();
  for (const q of uriQuery(req)) {
    const eq = q.indexOf('=');
    const k = eq < 0 ? q : q.slice(0, eq);
    if (!allowed.includes(k)) return `unknown query parameter ${JSON.stringify(k)}; this resource takes ${allowed.join(', ')}`;
    if (seen.has(k)) return `query parameter ${k} given more than once`;
    seen.add(k);
  }
  return null;
}

/** `repKey`: the request's downloadKey. `followUp`: a block of a notification asked for with its observation's own request (route). */
async function get(ctx: Context, observers: Observers, ex: Exchange, req: CoapMessage, path: string[], repKey: string, query: Map<string, string>, b2: Block | undefined, continuing: boolean, followUp: boolean): Promise<void> {
  const obs = observe(req);
  const continuation = b2 !== undefined && b2.num > 0;
  // RFC 7641 §3.6: a GET with Observe=1, or without Observe, on the token of an observation ends it.
  if (obs !== 0 && !continuation) observers.cancel(ex.epKey, ex.token, repKey);
  const addr = parseSegments(path, 'subscribe');
  const acc = accept(req);
  if (acc !== undefined && contentTypeOf(acc) === undefined) return ex.respond(diagnostic(Code.NotAcceptable, `Content-Format ${acc} is not supported`));
  const principal = await ctx.auth.principal(ex.epKey, query.get('auth'));
  const wait = continuing ? 0 : ctx.rate.take(`principal:${principal.id}`);
  if (wait > 0) return ex.respond(tooManyRequests(wait));
  // Read before asking: a change told while the answer is on its way makes an observation due again at once.
  const version = ctx.platform.accessVersion?.(principal) ?? 0;
  await ctx.auth.authorize(principal, addr.channel, 'messages:subscribe');
  ctx.auth.active(principal);
  const target = { channel: addr.channel, filter: subscriptionFilter(addr.subtopic), repKey };
  // The kept representation went away meanwhile (its last block served, or pushed out): reading
  // again is a request of its own.
  if (continuing && (followUp && b2 ? !observers.continues(ex.epKey, ex.token, target.repKey, b2) : ctx.reps.get(target.repKey) === undefined)) {
    const again = Math.max(ctx.rate.take(`endpoint:${ex.epKey}`), ctx.rate.take(`principal:${principal.id}`));
    if (again > 0) return ex.respond(tooManyRequests(again));
  }
  if (obs === 0 && !continuation && (await observers.register(ex, principal, target, acc, b2, version))) return;
  if (followUp && b2) {
    // The notification's own blocks, with its Observe number (observe.ts `fetch`).
    const reply = observers.fetch(ex.epKey, ex.token, target.repKey, b2);
    if (reply === null) return ex.respond(diagnostic(Code.BadOption, `block ${b2.num} is past the end of the notification`));
    if (reply) return ex.respond(reply);
  }
  return read(ctx, ex, target, acc, b2, etags(req), !followUp);
}
