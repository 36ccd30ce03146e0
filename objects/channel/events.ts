import type { ChannelCore } from './core';
import { closeSocket } from './fanout';
import { onLinkMessage } from './link-socket';
import { onSubscriberMessage } from './subscriber';

/** WebSocket events, dispatched by the socket's kind (from its attachment, so hibernation-proof). */

export async function onSocketMessage(core: ChannelCore, ws: WebSocket, data: string | ArrayBuffer): Promise<void> {
  const att = core.sockets.attachment(ws);
  if (!att) {
    closeSocket(core, ws, 1011, 'unknown connection');
    return;
  }
  if (att.kind === 'link') await onLinkMessage(core, ws, att, data);
  else await onSubscriberMessage(core, ws, att, data);
}

export function onSocketClose(core: ChannelCore, ws: WebSocket, code: number): void {
  // Complete the closing handshake (RFC 6455 §5.5.1). 1005/1006 are never sent on the wire (§7.4.1).
  closeSocket(core, ws, code === 1005 || code === 1006 || code < 1000 || code > 4999 ? 1000 : code, '');
}

export function onSocketError(core: ChannelCore, ws: WebSocket, error: unknown): void {
  console.warn('channel socket error', error);
  closeSocket(core, ws, 1011, 'socket error');
}
