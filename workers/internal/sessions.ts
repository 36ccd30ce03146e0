import { HEADER_SESSION_KEY } from '../../objects/session/headers';
import { SESSION_SUBPROTOCOL } from '../../shared/session-link';
import { ApiError } from '../lib/errors';
import { errors } from '../lib/openapi';
import { router } from '../lib/router';
import { requireBridge } from './index';
import { isUpgrade, offeredProtocols } from '../messages/upgrade';

/**
 * The bridge's holder socket to one MQTT session's actor (docs/mqtt.md "Durable sessions").
 Only the bridge (BRIDGE_SECRET) gets in; the key (principal id + client id) is
 * the bridge's, which it derived from a credential it verified.
 */
export const sessionsRouter = router();

/** Principal ids and client ids are bounded (client id ≤ 256 characters by default); keep a margin. */
const MAX_KEY_LENGTH = 2048;

sessionsRouter.use('/internal/sessions/*', requireBridge());

sessionsRouter.get('/internal/sessions/:key', async (c) => {
  if (!isUpgrade(c.req.raw)) throw new ApiError(426, 'upgrade_required', 'the session socket is a WebSocket', undefined, { upgrade: 'websocket' });
  const key = c.req.param('key');
  if (!key || key.length > MAX_KEY_LENGTH) throw new ApiError(400, 'invalid_session_key', `a session key is 1..${MAX_KEY_LENGTH} characters`);
  const stub = c.env.SESSIONS.get(c.env.SESSIONS.idFromName(key));
  const offered = offeredProtocols(c.req.raw).includes(SESSION_SUBPROTOCOL);
  // A fresh request: only what was checked here reaches the actor.
  return stub.fetch('https://session.internal/', { headers: { upgrade: 'websocket', [HEADER_SESSION_KEY]: encodeURIComponent(key), ...(offered ? { 'sec-websocket-protocol': SESSION_SUBPROTOCOL } : {}) } });
});

sessionsRouter.openAPIRegistry.registerPath({
  method: 'get',
  path: '/internal/sessions/{key}',
  operationId: 'openSessionHolder',
  tags: ['internal (bridge)'],
  security: [{ bridge: [] }],
  summary: 'Holder socket to one MQTT session actor (WebSocket, subprotocol edgeflux.session.v1)',
  parameters: [{ name: 'key', in: 'path', required: true, schema: { type: 'string' }, description: 'Session key: principal id, NUL, MQTT client id (URL-encoded)' }],
  responses: { 101: { description: 'Switching Protocols' }, ...errors(400, 401, 426) },
});
