import { z, type OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../app-env';
import { errors, jsonResponse, SECURED } from '../lib/openapi';
import { QueryResult, queryParameters } from '../query/openapi';
import { ACCEPT_ENCODING } from './body';

/**
 * OpenAPI entries for the message routes. The routes themselves are plain Hono handlers: a
 * subtopic is any number of path segments and the bodies are any media type, which OpenAPI
 * path templates and zod request validation cannot express.
 */
const Published = z.object({ seq: z.number().int().openapi({ description: 'Per-channel order of the stored message' }), created: z.number().int().openapi({ description: 'ms since epoch' }) }).openapi('Published');

const channelParam = { name: 'id', in: 'path' as const, required: true, schema: { type: 'string' as const }, description: 'Channel id' };
const subtopicParam = { name: 'subtopic', in: 'path' as const, required: true, schema: { type: 'string' as const }, description: 'One or more `/`-separated segments (subscriptions may use `+` and `#`, percent-encoded as %2B / %23)' };
/** Any message route takes the credential in the query string too (workers/auth/credentials.ts). */
const authorizationParam = { name: 'authorization', in: 'query' as const, required: false, schema: { type: 'string' as const }, description: "The Authorization header's value (`Bearer <token>` or `Device <key>`), for clients that cannot set headers, such as a browser opening a WebSocket; a header or credential subprotocol entry wins over it" };
const retainParam = { name: 'retain', in: 'query' as const, required: false, schema: { type: 'boolean' as const }, description: 'Keep the message as the retained message of its subtopic (an empty retained body clears it)' };
/** The WebSocket subscription's options (docs/channel-actor.md); `format` shares its name with the query API's. */
const subscribeParams = [
  { name: 'since', in: 'query' as const, required: false, schema: { type: 'integer' as const, minimum: 0 }, description: 'WebSocket subscribe: replay what came after this seq first (a gap notice for what is no longer kept), then live messages' },
  { name: 'ack', in: 'query' as const, required: false, schema: { type: 'boolean' as const }, description: 'WebSocket subscribe: opt into flow control: acknowledge with `{type:"ack",seq}` frames; a socket that falls a window behind is closed with 1013' },
];
const getParams = queryParameters.map((p) => (p.name === 'format' ? { ...p, description: `${p.description}. With Upgrade: websocket, the frame encoding instead: \`json\` (default) or \`cbor\` (as with the \`edgeflux.cbor\` subprotocol)` } : p));

/** What a payload download says about itself (RFC 9110 §8.8, §14.3). */
const payloadHeaders = {
  ETag: { description: 'Strong; the same for as long as the message is stored', schema: { type: 'string' as const } },
  'Last-Modified': { description: 'When the channel stored the message', schema: { type: 'string' as const } },
  'Accept-Ranges': { description: '`bytes`', schema: { type: 'string' as const } },
};

/** A download is saved as a file, not shown (workers/query/index.ts `payload`). */
const download = {
  'Content-Disposition': { description: '`attachment; filename="{channel}-{seq}"`', schema: { type: 'string' as const } },
};

/** A Content-Encoding the publish route cannot remove: the 415 says which it can (RFC 9110 §12.5.3). */
const unsupportedEncoding = {
  ...errors(415)['415'],
  description: 'Unsupported Content-Encoding',
  headers: { 'Accept-Encoding': { description: `The codings the route removes: \`${ACCEPT_ENCODING}\``, schema: { type: 'string' as const } } },
};

export function describeRoutes(app: OpenAPIHono<AppEnv>): void {
  const tags = ['messages'];
  for (const path of ['/channels/{id}/messages', '/channels/{id}/messages/{subtopic}']) {
    const parameters = path.includes('subtopic') ? [channelParam, subtopicParam] : [channelParam];
    app.openAPIRegistry.registerPath({
      method: 'post',
      path,
      operationId: path.includes('subtopic') ? 'publishMessageToSubtopic' : 'publishMessage',
      tags,
      security: SECURED,
      summary: 'Publish one message',
      description:
        'The body is the payload, stored as sent (a `Content-Encoding` of gzip or deflate removed first; any other coding is 415); `Content-Type` is its content type (default application/octet-stream). SenML JSON/CBOR and application/json bodies are validated. `?retain=true` keeps it as the retained message of its subtopic (an empty retained body clears it).',
      request: { body: { required: true, content: { '*/*': { schema: { type: 'string', format: 'binary' } } } } },
      responses: { 202: jsonResponse(Published, 'Stored; seq and created assigned by the channel'), ...errors(400, 401, 403, 404, 413, 429), 415: unsupportedEncoding },
      parameters: [...parameters, retainParam, authorizationParam],
    });
    app.openAPIRegistry.registerPath({
      method: 'get',
      path,
      operationId: path.includes('subtopic') ? 'queryMessagesInSubtopic' : 'queryMessages',
      tags,
      security: SECURED,
      summary: 'Query stored messages; or, with Upgrade: websocket, subscribe',
      description:
        'Without an Upgrade header this is the query API (docs/query.md): filters below, JSON by default, `Accept: text/csv` for CSV, `Accept: application/x-ndjson` (or `application/jsonl`) for the items as JSON lines. With `Upgrade: websocket` it subscribes: frames are JSON text, or CBOR binary with the `edgeflux.cbor` subprotocol or `?format=cbor`. The first frame is always `{type:"subscribed",seq,since?}` (`seq` is the last seq of the channel at that moment: the resume point before any message arrives; `since` echoes the query), then retained or replayed messages, then live ones. `?since=<seq>` resumes after that seq (gap notices for what is no longer kept), `?ack=true` opts into flow control. Without a subtopic every message of the channel is delivered. A refused upgrade is accepted, sends one `{type:"error",status,code,message}` frame and closes with 4000+status. See docs/channel-actor.md.',
      parameters: [...parameters, ...getParams, ...subscribeParams, authorizationParam],
      responses: { 200: { description: 'Stored messages, SenML records or aggregates', headers: { Link: { description: 'Listings with more rows: `<the same query with cursor=next>; rel="next"` (JSON, CSV and JSON lines alike)', schema: { type: 'string' } } }, content: { 'application/json': { schema: QueryResult }, 'text/csv': { schema: { type: 'string' } }, 'application/x-ndjson': { schema: { type: 'string' } }, 'application/jsonl': { schema: { type: 'string' } } } }, 101: { description: 'Switching Protocols' }, ...errors(400, 401, 403, 404) },
    });
  }
  app.openAPIRegistry.registerPath({
    method: 'get',
    path: '/channels/{id}/payloads/{seq}',
    operationId: 'getPayload',
    tags,
    security: SECURED,
    summary: 'The stored payload of one message, byte for byte, with its content type',
    description:
      'A download as RFC 9110 has it: one byte `Range` is answered 206 with `Content-Range` (a range starting past the end is 416 with `Content-Range: bytes */size`; another unit, several ranges or a malformed header is ignored: 200, the whole payload). `ETag` and `Last-Modified` never change for a stored message: `If-None-Match` / `If-Modified-Since` answer 304, `If-Range` resumes only the same payload, `If-Match` / `If-Unmodified-Since` that fail are 412. HEAD answers the same headers.',
    parameters: [
      channelParam,
      { name: 'seq', in: 'path', required: true, schema: { type: 'integer' }, description: 'The message seq' },
      ...['Range', 'If-Range', 'If-None-Match', 'If-Modified-Since', 'If-Match', 'If-Unmodified-Since'].map((name) => ({ name, in: 'header' as const, required: false, schema: { type: 'string' as const } })),
      authorizationParam,
    ],
    responses: {
      200: { description: 'The payload', headers: { ...payloadHeaders, ...download }, content: { '*/*': { schema: { type: 'string', format: 'binary' } } } },
      206: { description: 'The requested byte range', headers: { ...payloadHeaders, ...download, 'Content-Range': { description: '`bytes first-last/size`', schema: { type: 'string' } } }, content: { '*/*': { schema: { type: 'string', format: 'binary' } } } },
      304: { description: 'Not modified (If-None-Match / If-Modified-Since)', headers: payloadHeaders },
      ...errors(400, 401, 403, 404),
      412: { ...errors(412)['412'], description: 'If-Match or If-Unmodified-Since failed', headers: payloadHeaders },
      416: { ...errors(416)['416'], description: 'The range starts past the end', headers: { ...payloadHeaders, 'Content-Range': { description: '`bytes */size`', schema: { type: 'string' } } } },
    },
  });
  app.openAPIRegistry.registerPath({
    method: 'get',
    path: '/internal/channels/{id}/link',
    operationId: 'openChannelLink',
    tags: ['internal (bridge)'],
    security: [{ bridge: [] }],
    summary: 'Bridge link to one channel (WebSocket, subprotocol edgeflux.link.v2 or edgeflux.link.v1)',
    parameters: [channelParam],
    responses: { 101: { description: 'Switching Protocols' }, ...errors(400, 401, 404, 426) },
  });
}
