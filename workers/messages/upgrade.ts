import type { FrameEncoding } from '../../shared/frames';
import { ApiError } from '../lib/errors';

/** WebSocket handshake details shared by the subscriber and link routes (RFC 6455 §4). */

export const SUBPROTOCOL_JSON = 'edgeflux.json';
export const SUBPROTOCOL_CBOR = 'edgeflux.cbor';

export const isUpgrade = (req: Request): boolean => req.headers.get('upgrade')?.toLowerCase() === 'websocket';

/** The client's offered subprotocols, in its order of preference (RFC 6455 §4.1, item 10). */
export function offeredProtocols(req: Request): string[] {
  return (req.headers.get('sec-websocket-protocol') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * Frames go out as CBOR when the client offers `edgeflux.cbor` or asks `?format=cbor`, else JSON.
 * The answer names one offered subprotocol — `edgeflux.cbor`/`edgeflux.json` when offered, else
 * the credential entry the client authenticated with — because a browser that offered any
 * subprotocol fails the handshake when the answer names none.
 */
export function negotiate(req: Request, credentialProtocol: string | undefined): { encoding: FrameEncoding; subprotocol?: string } {
  const offered = offeredProtocols(req);
  const format = new URL(req.url).searchParams.get('format');
  if (format !== null && format !== 'json' && format !== 'cbor') throw new ApiError(400, 'invalid_format', 'format must be json or cbor');
  const encoding: FrameEncoding = offered.includes(SUBPROTOCOL_CBOR) || format === 'cbor' ? 'cbor' : 'json';
  const named = encoding === 'cbor' ? SUBPROTOCOL_CBOR : SUBPROTOCOL_JSON;
  const subprotocol = offered.includes(named) ? named : (credentialProtocol ?? offered[0]);
  return subprotocol === undefined ? { encoding } : { encoding, subprotocol };
}

/** WebSocket close code for a refused upgrade: 4000 + the HTTP status (4401, 4403, 4404…), a private-use code (RFC 6455 §7.4.2). */
export const refusalCloseCode = (status: number): number => (status >= 400 && status <= 599 ? 4000 + status : 4000);

/**
 * A refused WebSocket upgrade that a browser can read: browsers hide the status and body of a
 * failed handshake, so (like partyserver) accept, send one error frame
 * `{type:'error', status, code, message}`, then close with 4000+status.
 */
export function refuseUpgrade(req: Request, err: ApiError): Response {
  const { 0: client, 1: server } = new WebSocketPair();
  server.accept();
  server.send(JSON.stringify({ type: 'error', status: err.status, code: err.code, message: err.message }));
  server.close(refusalCloseCode(err.status), err.message.slice(0, 120));
  const headers = new Headers();
  const first = offeredProtocols(req)[0];
  if (first) headers.set('sec-websocket-protocol', first);
  return new Response(null, { status: 101, webSocket: client, headers });
}

/** Maps the actor's `{status, code, message}` error answer to the API's one error type. */
export async function actorRefusal(res: Response): Promise<ApiError> {
  let body: { code?: unknown; message?: unknown } = {};
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  const code = typeof body.code === 'string' ? body.code : 'channel_error';
  const message = typeof body.message === 'string' ? body.message : `channel refused the connection (${res.status})`;
  return new ApiError(res.status >= 400 ? res.status : 502, code, message);
}
