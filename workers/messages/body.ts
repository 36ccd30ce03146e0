import { gunzipSync, inflateSync } from 'node:zlib';
import { ApiError } from '../lib/errors';

/**
 * The payload of an HTTP publish: the request's content, its content coding removed (RFC 9110
 * §8.4). Telegraf, Fluent Bit and many HTTP clients can gzip what they send; stored as it came, a
 * gzipped body became "text/plain" bytes nobody could read (or a JSON body refused as not UTF-8).
 */

/** Codings this route removes, by their RFC 9110 §8.4.1 names. */
const DECODERS = new Map<string, typeof gunzipSync>([
  ['gzip', gunzipSync],
  ['x-gzip', gunzipSync],
  ['deflate', inflateSync],
]);

/** What a 415 for a content coding says the route accepts (RFC 9110 §12.5.3). */
export const ACCEPT_ENCODING = 'gzip, deflate';

const tooBig = (max: number) => new ApiError(413, 'payload_too_large', `payload exceeds ${max} bytes`);

/**
 * Reads all of a body sent without Content-Length (chunked), refusing with 413 as soon as it passes
 * `max` bytes. The chunks are kept and copied once at the end: measured in workerd, that beat one
 * buffer grown by doubling (which copies and zeroes about twice the body) at every size and chunk
 * size tried. A failed read (the client went away) is thrown as it came: it says nothing about the
 * body's content.
 */
async function readChunked(stream: ReadableStream<Uint8Array>, max: number): Promise<Uint8Array> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const step = await reader.read();
    if (step.done) break;
    size += step.value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      throw tooBig(max);
    }
    chunks.push(step.value);
  }
  // One chunk that is all of its buffer is the body as is (RPC to the channel copies a view's whole buffer).
  const [only] = chunks;
  if (chunks.length === 1 && only && only.byteOffset === 0 && only.byteLength === only.buffer.byteLength) return only;
  const body = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    body.set(c, at);
    at += c.byteLength;
  }
  return body;
}

/**
 * The body as sent, at most `max` bytes (413 beyond, before it is read when Content-Length says so).
 * With a Content-Length, HTTP framing bounds the body and the runtime reads it natively in one go.
 */
async function readRaw(req: Request, max: number): Promise<Uint8Array> {
  const length = req.headers.get('content-length');
  if (length !== null && Number(length) > max) throw tooBig(max);
  if (!req.body) return new Uint8Array();
  if (length === null) return readChunked(req.body, max);
  const body = new Uint8Array(await req.arrayBuffer());
  if (body.byteLength > max) throw tooBig(max);
  return body;
}

/**
 * The request's payload, at most `max` bytes once decoded (413 beyond). Content-Encoding: none or
 * `identity` as is; `gzip` / `x-gzip` / `deflate` (zlib, RFC 9110 §8.4.1.2) decoded; a coding it
 * cannot decode is 415 with Accept-Encoding, a body that is not what its coding says 400 — never
 * stored still encoded under the content type of the decoded form.
 *
 * A coded body is read whole first, under the same `max` (what decodes to at most `max` bytes is
 * smaller than that coded, short of a pathological encoder), then decoded in one call that stops at
 * `max` bytes of output: a decompression stream would inflate each chunk it is given in full — a
 * 1 MB gzip of 1000 MiB of zeros, gigabytes — before anything counted the output.
 */
export async function readPayload(req: Request, max: number): Promise<Uint8Array> {
  const codings = (req.headers.get('content-encoding') ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '' && s !== 'identity');
  if (codings.length === 0) return readRaw(req, max);
  const decode = codings.length === 1 ? DECODERS.get(codings[0]!) : undefined;
  if (!decode) {
    throw new ApiError(415, 'unsupported_content_encoding', `Content-Encoding ${JSON.stringify(codings.join(', '))} is not supported; send the payload as is, or with one of: ${ACCEPT_ENCODING}`, undefined, {
      'accept-encoding': ACCEPT_ENCODING,
    });
  }
  const coded = await readRaw(req, max);
  // No content, whatever its coding says (an empty `?retain=true` publish clears the retained message).
  if (coded.byteLength === 0) return coded;
  let decoded: Uint8Array;
  try {
    decoded = decode(coded, { maxOutputLength: max });
  } catch (e) {
    // zlib throws RangeError when the output would pass maxOutputLength (or cannot be allocated).
    if (e instanceof RangeError) throw tooBig(max);
    throw new ApiError(400, 'invalid_content_encoding', `the body is not valid ${codings[0]} data (Content-Encoding: ${codings[0]})`);
  }
  // zlib answers a Buffer; the payload is a plain Uint8Array, not a view into a larger allocation
  // (RPC to the channel would copy all of it).
  const whole = decoded.byteOffset === 0 && decoded.byteLength === decoded.buffer.byteLength;
  return whole ? new Uint8Array(decoded.buffer, 0, decoded.byteLength) : new Uint8Array(decoded);
}
