import { createRoute, z } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import { createMiddleware } from 'hono/factory';
import type { AppEnv } from '../app-env';
import { resolvePrincipal } from '../auth';
import type { Principal } from '../auth/principal';
import { accessFrom, check, decideMessages, refusalFrom } from '../iam/access';
import { loadAccessRows } from '../iam/rows';
import { AUTHORIZE_BATCH } from '../../shared/authorize';
import { changesSince } from '../iam/epochs';
import { channelActor } from '../lib/actors';
import { ApiError, notFound, unauthorized } from '../lib/errors';
import { timingSafeEqual } from '../lib/crypto';
import { errors, jsonBody, jsonResponse } from '../lib/openapi';
import { router } from '../lib/router';
import { AccessChangesRequest, AccessChangesResult, AuthenticateRequest, AuthorizeBatchRequest, AuthorizeBatchResult, AuthorizeRequest, AuthorizeResult, BridgeResetRequest, ChannelId, ChannelsRequest, MAX_AUTHORIZE_BODY, PresenceRequest, PrincipalSchema } from './schemas';

/**
 * The bridge's door into the workers. Only a caller holding BRIDGE_SECRET gets in; the bridge then
 * asks the same PDP every HTTP route uses, so MQTT and CoAP follow exactly the HTTP rules.
 */
export const internalRouter = router();
const tags = ['internal (bridge)'];
const security = [{ bridge: [] }];

export const requireBridge = () =>
  createMiddleware<AppEnv>(async (c, next) => {
    const auth = c.req.header('authorization') ?? '';
    const secret = c.env.BRIDGE_SECRET;
    if (!secret || !auth.startsWith('Bearer ') || !timingSafeEqual(auth.slice(7), secret)) throw unauthorized('bridge credential required');
    await next();
  });

internalRouter.use('/internal/*', requireBridge());
// Tighter than the API's limit (workers/app.ts): no body this route's schema accepts comes near it.
internalRouter.use(
  '/internal/authorize',
  bodyLimit({
    maxSize: MAX_AUTHORIZE_BODY,
    onError: () => {
      throw new ApiError(413, 'payload_too_large', `request body over ${MAX_AUTHORIZE_BODY} bytes: no batch /internal/authorize accepts is that large`);
    },
  }),
);

internalRouter.openapi(
  createRoute({
    method: 'post',
    path: '/internal/authenticate',
    operationId: 'authenticateCredential',
    tags,
    security,
    summary: 'Check a device/app/key credential presented over MQTT or CoAP',
    request: jsonBody(AuthenticateRequest),
    responses: { 200: jsonResponse(z.object({ principal: PrincipalSchema }), 'Authenticated'), ...errors(401, 415, 422) },
  }),
  async (c) => {
    const { username, password } = c.req.valid('json');
    const isJwt = password.split('.').length === 3;
    const principal = await resolvePrincipal(c.env, isJwt ? { scheme: 'bearer', value: password } : { scheme: 'device', value: password });
    // [MQTT-3.1.3] username = device id: a device key presented under another device's id is refused.
    if (principal.kind === 'device' && username && username !== principal.id) throw unauthorized('username does not match the device of this key');
    if (principal.kind === 'user') throw new ApiError(401, 'unauthorized', 'user session tokens cannot connect devices; use a device key or an API key');
    // A JWT's signature is all resolvePrincipal checks: an app token is good only while its app exists
    // and has not revoked what it issued (a secret rotation with revokeIssued) since.
    if (principal.kind === 'app') {
      const refused = refusalFrom(await loadAccessRows(c.env.DB, [{ principal, credential: true }]), principal, Date.now());
      if (refused) throw unauthorized(refused.reason ?? 'credential no longer valid');
    }
    return c.json({ principal }, 200);
  },
);

internalRouter.openapi(
  createRoute({
    method: 'post',
    path: '/internal/authorize',
    operationId: 'authorizeActions',
    tags,
    security,
    summary: 'Policy decisions for a principal on channels (none: whether its credential is still good), or for many principals at once (`items`)',
    description:
      'A bridge coalesces the questions its sessions ask at about the same moment (after an access change, every session of the org asks) into one `items` batch: ' +
      `at most ${AUTHORIZE_BATCH.items} principals and ${AUTHORIZE_BATCH.checks} checks, read from D1 in one round trip whatever its size and decided exactly as one alone. ` +
      'The single form (`principal`, `checks`) is kept for older bridges.',
    request: jsonBody(z.union([AuthorizeRequest, AuthorizeBatchRequest])),
    responses: { 200: jsonResponse(z.union([AuthorizeResult, AuthorizeBatchResult]), 'Decisions (`items` in the order asked, for a batch)'), ...errors(401, 413, 415, 422) },
  }),
  async (c) => {
    const body = c.req.valid('json');
    const answers = await decideMessages(c.env.DB, 'items' in body ? body.items : [body]);
    const out = answers.map(({ results, refused }) => ({ results, ...(refused ? { refused: { status: refused.status, reason: refused.reason ?? 'credential no longer valid' } } : {}) }));
    return c.json('items' in body ? { items: out } : out[0]!, 200);
  },
);

const MAX_CHANNELS = 10_000;
internalRouter.openapi(
  createRoute({
    method: 'post',
    path: '/internal/channels',
    operationId: 'listAllowedChannels',
    tags,
    security,
    summary: 'Every channel a principal may use for an action (for `channels/+/messages/…` subscriptions)',
    request: jsonBody(ChannelsRequest),
    responses: { 200: jsonResponse(z.object({ channels: z.array(z.string()) }), 'Channel ids'), ...errors(401, 415, 422) },
  }),
  async (c) => {
    const { principal, action } = c.req.valid('json');
    // A credential no longer good (a rotated key, a revoked API key) gets no list: 401, as /internal/authorize's decisions.
    const rows = await loadAccessRows(c.env.DB, [{ principal, credential: true, ...(principal.kind === 'user' ? {} : { orgs: [principal.orgId] }) }]);
    const refused = refusalFrom(rows, principal, Date.now());
    if (refused) throw unauthorized(refused.reason ?? 'credential no longer valid');
    if (principal.kind === 'user') return c.json({ channels: [] }, 200);
    const access = accessFrom(rows, principal, principal.orgId);
    const { results } = await c.env.DB.prepare('SELECT id FROM channels WHERE org_id = ? ORDER BY created_at, id LIMIT ?').bind(principal.orgId, MAX_CHANNELS).all<{ id: string }>();
    const channels = results
      .map((r) => r.id)
      .filter((id) => {
        try {
          check(access, action, `channels/${id}`);
          return true;
        } catch {
          return false;
        }
      });
    return c.json({ channels }, 200);
  },
);

internalRouter.openapi(
  createRoute({
    method: 'post',
    path: '/internal/devices/{id}/presence',
    operationId: 'recordDevicePresence',
    tags,
    security,
    summary: 'Record a device connecting to or leaving a bridge',
    request: { params: z.object({ id: z.string() }), ...jsonBody(PresenceRequest) },
    responses: { 204: { description: 'Recorded' }, ...errors(401, 404, 415, 422) },
  }),
  async (c) => {
    const { id } = c.req.valid('param');
    const { online, at = Date.now(), bridge = '' } = c.req.valid('json');
    const db = c.env.DB;
    if (!(await db.prepare('SELECT 1 AS ok FROM devices WHERE id = ?').bind(id).first())) throw new ApiError(404, 'not_found', 'device not found');
    await db.batch([
      // An update older than what this bridge already said is ignored (requests may overtake each other).
      db
        .prepare('INSERT INTO device_presence (device_id, bridge, online, at) VALUES (?, ?, ?, ?) ON CONFLICT (device_id, bridge) DO UPDATE SET online = excluded.online, at = excluded.at WHERE excluded.at >= device_presence.at')
        .bind(id, bridge, online ? 1 : 0, at),
      ...summarize(db, id, at),
    ]);
    return c.body(null, 204);
  },
);

/** devices.online = some bridge has the device online; last_seen = the latest report. Offline rows older than a day go. */
function summarize(db: D1Database, device: string, at: number): D1PreparedStatement[] {
  return [
    db
      .prepare('UPDATE devices SET online = EXISTS (SELECT 1 FROM device_presence WHERE device_id = ?1 AND online = 1), last_seen = MAX(COALESCE(last_seen, 0), ?2) WHERE id = ?1')
      .bind(device, at),
    db.prepare('DELETE FROM device_presence WHERE device_id = ? AND online = 0 AND at < ?').bind(device, Date.now() - 86_400_000),
  ];
}

internalRouter.openapi(
  createRoute({
    method: 'post',
    path: '/internal/bridges/{id}/reset',
    operationId: 'resetBridge',
    tags,
    security,
    summary: 'A bridge (re)started: every device it had online is offline unless another bridge has it',
    request: { params: z.object({ id: z.string().min(1).max(256) }), ...jsonBody(BridgeResetRequest) },
    responses: { 204: { description: 'Reset' }, ...errors(401, 415, 422) },
  }),
  async (c) => {
    const { id } = c.req.valid('param');
    const { at = Date.now() } = c.req.valid('json');
    const db = c.env.DB;
    const { results } = await db.prepare('SELECT device_id FROM device_presence WHERE bridge = ? AND online = 1 AND at <= ?').bind(id, at).all<{ device_id: string }>();
    await db.batch([db.prepare('UPDATE device_presence SET online = 0, at = ? WHERE bridge = ? AND online = 1 AND at <= ?').bind(at, id, at)]);
    for (let i = 0; i < results.length; i += 50) await db.batch(results.slice(i, i + 50).flatMap((r) => summarize(db, r.device_id, at)));
    return c.body(null, 204);
  },
);

internalRouter.openapi(
  createRoute({
    method: 'post',
    path: '/internal/access/changes',
    operationId: 'listAccessChanges',
    tags,
    security,
    summary: 'Which orgs had their access data written since a bridge last asked (it keeps its cached decisions for the others)',
    request: jsonBody(AccessChangesRequest),
    responses: { 200: jsonResponse(AccessChangesResult, 'Changes'), ...errors(401, 415, 422) },
  }),
  async (c) => {
    const { since } = c.req.valid('json');
    // A bridge that has not asked before learns only where the sequence is: it trusts nothing cached yet.
    const changes = await changesSince(c.env.DB, since ?? Number.MAX_SAFE_INTEGER);
    return c.json(since === null ? { epoch: changes.epoch, orgs: [], all: true } : changes, 200);
  },
);

internalRouter.openapi(
  createRoute({
    method: 'post',
    path: '/internal/channel-defaults',
    operationId: 'getChannelDefaults',
    tags,
    security,
    summary: "What a channel's actor applies to a message published without a content type (a bridge checks a will against it at CONNECT)",
    request: jsonBody(z.object({ channel: ChannelId }).openapi('BridgeChannelDefaults')),
    responses: { 200: jsonResponse(z.object({ defaultContentType: z.string() }), 'Defaults'), ...errors(401, 404, 415, 422) },
  }),
  async (c) => {
    const { channel } = c.req.valid('json');
    // No actor is woken (or made) for a channel that does not exist.
    if (!(await c.env.DB.prepare('SELECT 1 AS x FROM channels WHERE id = ?').bind(channel).first())) throw notFound('channel');
    const r = await channelActor(c.env, channel).defaults(channel);
    if (!r) throw notFound('channel');
    return c.json(r, 200);
  },
);
