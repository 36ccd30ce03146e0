import type { Context, Next } from 'hono';
import { chooseLinkSubprotocol, LINK_SUBPROTOCOL_V1, LINK_SUBPROTOCOL_V2 } from '../../shared/link';
import { TopicError, channelIdProblem, parseHttpPath, type Address, type TopicMode } from '../../shared/topics';
import { HEADER_CHANNEL, HEADER_LINK, HEADER_SUBSCRIBER, type SubscriberOptions } from '../../objects/channel/sockets';
import type { AppEnv } from '../app-env';
import { authenticate, authorizeChannel, extractCredential, resolvePrincipal } from '../auth';
import { timingSafeEqual } from '../lib/crypto';
import { channelActor } from '../lib/actors';
import { ApiError, notFound, unauthorized } from '../lib/errors';
import { router } from '../lib/router';
import { readPayload } from './body';
import { describeRoutes } from './openapi';
import { actorRefusal, isUpgrade, negotiate, offeredProtocols, refuseUpgrade } from './upgrade';

/**
 * The message API (BRIEF "Addresses"): HTTP publish, WebSocket subscribe/publish, and the
 * bridge's link. Each call is authorized here, then handed to the channel's actor, which orders,
 * stores and fans out (docs/channel-actor.md). Mounted by workers/app.ts.
 */
export const messages = router();
describeRoutes(messages);

type C = Context<AppEnv>;

/** Hard ceiling of any channel's payload limit; bigger bodies are refused before they are read. */
const MAX_BODY = 1024 * 1024;

const actorFor = channelActor;

function address(c: C, mode: TopicMode): Address {
  try {
    return parseHttpPath(new URL(c.req.url).pathname, mode);
  } catch (e) {
    if (e instanceof TopicError) throw new ApiError(400, e.code, e.message);
    throw e;
  }
}

/**
 * A misspelt or repeated parameter is an error, not ignored (`?retian=true` would otherwise publish without
 * retaining), as in the query API. `authorization` is a credential, taken on every route.
 */
function onlyParams(c: C, allowed: readonly string[]): void {
  const seen = new Set<string>();
  for (const k of new URL(c.req.url).searchParams.keys()) {
    if (k !== 'authorization' && !allowed.includes(k)) throw new ApiError(400, 'invalid_query', `unknown query parameter ${JSON.stringify(k)}; this route takes ${allowed.join(', ')}`);
    // ?retain=false&retain=true: which one was meant? (c.req.query would take the first)
    if (seen.has(k)) throw new ApiError(400, 'invalid_query', `query parameter ${k} given more than once`);
    seen.add(k);
  }
}

function flag(c: C, name: string): boolean {
  const v = c.req.query(name);
  if (v === undefined || v === 'false' || v === '0') return false;
  if (v === '' || v === 'true' || v === '1') return true;
  throw new ApiError(400, 'invalid_query', `${name} must be true or false`);
}

async function publish(c: C): Promise<Response> {
  const { channel, subtopic } = address(c, 'publish');
  onlyParams(c, ['retain']);
  const { publisher } = await authorizeChannel(c, channel, 'messages:publish');
  const retain = flag(c, 'retain');
  const payload = await readPayload(c.req.raw, MAX_BODY);
  // Without a Content-Type the channel's default applies (application/octet-stream unless set, RFC 9110 §8.3).
  const contentType = c.req.header('content-type') ?? '';
  const [result] = await actorFor(c.env, channel).publish([{ subtopic, publisher, protocol: 'http', contentType, payload, retain }], channel);
  if (!result) throw new ApiError(502, 'channel_error', 'the channel gave no answer');
  if (!result.ok) {
    // RFC 6585 §4: a 429 may say when to retry.
    const headers = result.retryAfter === undefined ? undefined : { 'retry-after': String(result.retryAfter) };
    throw new ApiError(result.status, result.code, result.message, undefined, headers);
  }
  return c.json({ seq: result.seq, created: result.created }, 202);
}

async function mayPublish(c: C, channel: string): Promise<boolean> {
  try {
    await authorizeChannel(c, channel, 'messages:publish');
    return true;
  } catch (e) {
    if (e instanceof ApiError && e.status === 403) return false;
    throw e;
  }
}

function since(c: C): number | undefined {
  const v = c.req.query('since');
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v === '' || !Number.isSafeInteger(n) || n < 0) throw new ApiError(400, 'invalid_since', 'since must be a non-negative integer seq');
  return n;
}

async function subscribe(c: C, next: Next): Promise<Response | void> {
  // Plain GETs belong to the message-query API.
  if (!isUpgrade(c.req.raw)) return next();
  try {
    const { channel, subtopic } = address(c, 'subscribe');
    onlyParams(c, ['since', 'format', 'ack']);
    const { credential, subprotocol: credentialProtocol } = extractCredential(c.req.raw);
    if (!credential) throw unauthorized();
    c.set('principal', await resolvePrincipal(c.env, credential));
    const { publisher, orgId } = await authorizeChannel(c, channel, 'messages:subscribe');
    const { encoding, subprotocol } = negotiate(c.req.raw, credentialProtocol);
    const opts: SubscriberOptions = { publisher, canPublish: await mayPublish(c, channel), subtopic, encoding, ack: flag(c, 'ack'), principal: c.var.principal, org: orgId };
    const from = since(c);
    if (from !== undefined) opts.since = from;
    if (subprotocol) opts.subprotocol = subprotocol;
    // A fresh request: nothing the client sent reaches the actor except what was checked here.
    const res = await actorFor(c.env, channel).fetch('https://channel.internal/', {
      headers: { upgrade: 'websocket', [HEADER_CHANNEL]: channel, [HEADER_SUBSCRIBER]: JSON.stringify(opts) },
    });
    if (res.status !== 101) throw await actorRefusal(res);
    return res;
  } catch (e) {
    if (e instanceof ApiError) return refuseUpgrade(c.req.raw, e);
    throw e;
  }
}

async function link(c: C): Promise<Response> {
  const auth = c.req.header('authorization') ?? '';
  const secret = c.env.BRIDGE_SECRET;
  if (!secret || !auth.startsWith('Bearer ') || !timingSafeEqual(auth.slice(7), secret)) throw unauthorized('bridge credential required');
  if (!isUpgrade(c.req.raw)) throw new ApiError(426, 'upgrade_required', 'the link is a WebSocket', undefined, { upgrade: 'websocket' });
  const channel = c.req.param('id') ?? '';
  const problem = channelIdProblem(channel);
  if (problem) throw new ApiError(400, 'invalid_channel', problem);
  const row = await c.env.DB.prepare('SELECT 1 AS ok FROM channels WHERE id = ?').bind(channel).first();
  if (!row) throw notFound('channel');
  // The actor picks from what the bridge offered and answers with it; `subprotocol` is for actors
  // from before link v3, which read only that (v2 at most: they cannot read v3 frames).
  const offered = offeredProtocols(c.req.raw);
  const legacy = chooseLinkSubprotocol(offered.filter((p) => p === LINK_SUBPROTOCOL_V2 || p === LINK_SUBPROTOCOL_V1));
  const res = await actorFor(c.env, channel).fetch('https://channel.internal/', {
    headers: { upgrade: 'websocket', [HEADER_CHANNEL]: channel, [HEADER_LINK]: JSON.stringify({ offered, ...(legacy ? { subprotocol: legacy } : {}) }) },
  });
  if (res.status !== 101) throw await actorRefusal(res);
  return res;
}

messages.post('/channels/:id/messages', authenticate(), publish);
messages.post('/channels/:id/messages/:subtopic{.+}', authenticate(), publish);
messages.get('/channels/:id/messages', subscribe);
messages.get('/channels/:id/messages/:subtopic{.+}', subscribe);
messages.get('/internal/channels/:id/link', link);
