import { ApiError } from '../lib/errors';

/**
 * The payload of an HTTP publish: the request's content, its content coding removed (RFC 9110
 * §8.4). Telegraf, Fluent Bit and many HTTP clients can gzip what they send; stored as it came, a
 * gzipped body became "text/plain" bytes nobody could read (or a JSON body refused as not UTF-8).
 */

/** Codings this route removes, by their RFC 9110 §8.4.1 names. */
const DECODERS = new Map<string, 'gzip' | 'deflate'>([
  ['gzip', 'gzip'],
  ['x-gzip', 'gzip'],
  ['deflate', 'deflate'],
]);

/** What a 415 for a content coding says the route accepts (RFC 9110 §12.5.3). */
export const ACCEPT_ENCODING = 'gzip, deflate';

const tooBig = (max: number) => new ApiError(413, 'payload_too_large', `payload exceeds ${max} bytes`);

/** Reads all of `stream`, refusing with 413 as soon as it passes `max` bytes. */
async function readAtMost(stream: ReadableStream<Uint8Array>, max: number, onError: (e: unknown) => never): Promise<Uint8Array> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    let step: ReadableStreamReadResult<Uint8Array>;
    try {
      step = await reader.read();
    } catch (e) {
      onError(e);
    }
    if (step.done) break;
    size += step.value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      throw tooBig(max);
    }
    chunks.push(step.value);
  }
  const body = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    body.set(c, at);
    at += c.byteLength;
  }
  return body;
}

/**
 * The request's payload, at most `max` bytes once decoded (413 beyond, before more is read).
 * Content-Encoding: none or `identity` as is; `gzip` / `x-gzip` / `deflate` (zlib, RFC 9110
 * §8.4.1.2) decoded; a coding it cannot decode is 415 with Accept-Encoding, a body that is not
 * what its coding says 400 — never stored still encoded under the content type of the decoded form.
 */
export async function readPayload(req: Request, max: number): Promise<Uint8Array> {
  const declared = Number(req.headers.get('content-length') ?? '0');
  if (declared > max) throw tooBig(max);
  const codings = (req.headers.get('content-encoding') ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '' && s !== 'identity');
  const body = req.body;
  if (!body) return new Uint8Array();
  const rethrow = (e: unknown): never => {
    throw e;
  };
  if (codings.length === 0) return readAtMost(body, max, rethrow);
  const format = codings.length === 1 ? DECODERS.get(codings[0]!) : undefined;
  if (!format) {
    throw new ApiError(415, 'unsupported_content_encoding', `Content-Encoding ${JSON.stringify(codings.join(', '))} is not supported; send the payload as is, or with one of: ${ACCEPT_ENCODING}`, undefined, {
      'accept-encoding': ACCEPT_ENCODING,
    });
  }
  return readAtMost(body.pipeThrough(new DecompressionStream(format)), max, () => {
    throw new ApiError(400, 'invalid_content_encoding', `the body is not valid ${codings[0]} data (Content-Encoding: ${codings[0]})`);
  });
}
