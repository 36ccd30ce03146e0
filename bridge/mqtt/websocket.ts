import { Duplex } from 'node:stream';

/**
 * MQTT over WebSocket (MQTT 5 §6, 3.1.1 §6): the bytes of MQTT packets in binary frames, which
 * need not line up with packet boundaries [MQTT-6.0.0-2]; text frames close the connection
 * [MQTT-6.0.0-1]; the subprotocol is `mqtt` [MQTT-6.0.0-3]. Written against the smallest socket
 * interface so `ws` (Node), Bun's and Deno's WebSocket, or any other can be plugged in: the caller
 * forwards the socket's events to the returned adapter.
 */
export interface WebSocketLike {
  /**
   * Sends one binary message and calls `sent` once it is written to the network (`ws` does). The
   * adapter writes nothing more until then, so what a client does not read waits in the stream's
   * buffer, where the connection sees it as a backlog (QoS 0 deliveries are dropped past
   * `maxWriteBuffer`). A socket without such a callback (Bun, Deno) calls it when its
   * `bufferedAmount` is low again; called at once, nothing bounds what a slow client is sent.
   */
  send(data: Uint8Array, sent: (err?: Error) => void): void;
  close(code?: number, reason?: string): void;
  /**
   * Stop and restart reading the socket (`ws` has both). Without them nothing slows a client down:
   * what it sends while the connection reads no further packet waits in the bridge's memory.
   */
  pause?(): void;
  resume?(): void;
  /** Drops the socket without a closing handshake (`ws` has it): for a peer that does not answer the close. */
  terminate?(): void;
}

export interface WebSocketAdapter {
  /** The byte stream to give to `MqttServer.handle()`. */
  readonly stream: Duplex;
  /** A message arrived: binary data, or a string for a text frame. */
  message(data: Uint8Array | ArrayBuffer | string): void;
  /**
   * The socket closed: what it delivered before is still read, as after a TCP FIN (a DISCONNECT
   * and the publishes before it, sent just before the close). With an error it failed: the stream
   * is destroyed, as a TCP socket is on a reset.
   */
  closed(error?: Error): void;
}

/**
 * A message is handed to the packet reader in views of at most this many bytes. The reader parses
 * a chunk whole, and its back-pressure (pausing the stream) acts only between chunks: one 8 MiB
 * message of 2-byte PINGREQs taken as one chunk left four million packets pending behind a stalled
 * one. A TCP read is at most 64 KiB.
 */
const READ_SLICE = 16 * 1024;

/**
 * Packets written together (a corked burst, or what waited while the client was slow) go out as
 * one message up to this size; a larger packet goes alone. A client's WebSocket may bound a
 * message (`ws`'s maxPayload, an embedded client's frame buffer) well below what can wait here.
 */
const WRITE_MESSAGE = 64 * 1024;

/**
 * How long a destroyed connection's socket may take over its closing handshake before it is
 * dropped. A client that does not read never gets the close frame (it waits behind what it did not
 * read), and `ws` would hold the socket, and `server.close()`, for its own 30 s.
 */
const CLOSE_GRACE_MS = 1000;

/** The subprotocol to accept from a handshake's offer, or null (refuse the upgrade). */
export function chooseMqttSubprotocol(offered: Iterable<string>): string | null {
  for (const p of offered) if (p.trim().toLowerCase() === 'mqtt') return p.trim();
  // MQTT 3.1 clients still offer the old name.
  for (const p of offered) if (p.trim().toLowerCase() === 'mqttv3.1') return p.trim();
  return null;
}

export function adaptWebSocket(ws: WebSocketLike): WebSocketAdapter {
  let ended = false;
  /** Our side closed: nothing more is read, and the socket is never paused again (it must read the peer's close). */
  let closing = false;
  let dropAfterGrace: ReturnType<typeof setTimeout> | undefined;
  const unpause = () => {
    closing = true;
    ws.resume?.();
  };
  /**
   * Sends `bytes`; `done` once they are on the network. A send's error is not passed on: the socket
   * then closes or fails, and that ends the stream (an error here would destroy it, and drop the
   * packets the client sent before closing). Written after the close, bytes are dropped, as a TCP
   * socket's would be once its peer is gone.
   */
  const send = (bytes: Buffer, done: (e?: Error) => void) => {
    if (ended) return done();
    try {
      ws.send(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), () => done());
    } catch (e) {
      done(e instanceof Error ? e : new Error(String(e)));
    }
  };
  const stream = new Duplex({
    // The reader wants more: read the socket again (see message()).
    read() {
      ws.resume?.();
    },
    write(chunk: Buffer, _encoding, done) {
      send(chunk, done);
    },
    writev(chunks: { chunk: Buffer }[], done) {
      let group: Buffer[] = [];
      let size = 0;
      for (const { chunk } of chunks) {
        if (size > 0 && size + chunk.length > WRITE_MESSAGE) {
          // Messages go out in order: the last one's callback says all of them went.
          send(Buffer.concat(group, size), () => undefined);
          (group = []), (size = 0);
        }
        group.push(chunk);
        size += chunk.length;
      }
      send(group.length === 1 ? group[0]! : Buffer.concat(group, size), done);
    },
    final(done) {
      // A paused socket would not read the peer's answer to the close: its closing handshake would wait out ws's timeout.
      unpause();
      ws.close(1000);
      done();
    },
    destroy(err, done) {
      unpause();
      if (!ended) {
        ws.close(err ? 1011 : 1000);
        dropAfterGrace = setTimeout(() => ws.terminate?.(), CLOSE_GRACE_MS);
        dropAfterGrace.unref?.();
      }
      done(err);
    },
  });
  return {
    stream,
    message(data) {
      if (ended || closing) return;
      if (typeof data === 'string') {
        ended = true;
        ws.close(1003, 'MQTT needs binary frames');
        stream.destroy();
        return;
      }
      const bytes = data instanceof ArrayBuffer ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      // Every slice is pushed: they are views of a message already in memory, and one left out
      // would be lost. What bounds the work is that the reader takes them one at a time.
      let more = true;
      for (let at = 0; at < bytes.length; at += READ_SLICE) more = stream.push(bytes.subarray(at, at + READ_SLICE));
      // Back-pressure as over TCP: the packet reader pauses the stream when packets wait to be
      // handled; once its buffer is full the socket is paused too, until read() asks for more.
      if (!more && !closing) ws.pause?.();
    },
    closed(error) {
      if (dropAfterGrace) clearTimeout(dropAfterGrace);
      if (ended) return;
      ended = true;
      // Without an error the stream ends once the reader has taken everything, as a TCP socket does after a FIN.
      if (error) stream.destroy(error);
      else stream.push(null);
    },
  };
}
