/** Responses shared by the resources: diagnostics, and platform outcomes mapped to CoAP codes. */
import { Code, CoapFormatError, Opt, encodeUint, uintOption, type CoapOption } from '../../shared/coap';
import { TopicError } from '../../shared/topics';
import { PlatformError } from '../platform/types';
import type { CoapLimits } from './limits';
import type { Log, Reply } from './types';

const encoder = new TextEncoder();

/** RFC 7252 §5.5.2: an error response may carry a short UTF-8 diagnostic payload, no Content-Format. */
export const diagnostic = (code: number, message: string, options: CoapOption[] = []): Reply => ({
  code,
  options,
  payload: encoder.encode(message.length > 200 ? `${message.slice(0, 197)}...` : message),
});

export const maxAgeOption = (seconds: number): CoapOption => uintOption(Opt.MaxAge, Math.max(0, Math.min(0xffff_ffff, Math.ceil(seconds))));

/** ETag (RFC 7252 §5.10.6) of a message: its channel seq, 1–8 bytes. */
export const etagOf = (seq: number): CoapOption => {
  const v = encodeUint(seq % 0x1_0000_0000);
  return { number: Opt.ETag, value: v.length > 0 ? v : Uint8Array.of(0) };
};

export const tooLarge = (limits: CoapLimits, message: string): Reply =>
  // RFC 7252 §5.9.2.9: 4.13 SHOULD carry Size1, the largest body the server accepts.
  diagnostic(Code.RequestEntityTooLarge, message, [uintOption(Opt.Size1, limits.maxPayloadBytes)]);

/** RFC 8516 §3: 4.29 with Max-Age = seconds before the client may try again. */
export const tooManyRequests = (retryAfterS: number, message = 'too many requests'): Reply => diagnostic(Code.TooManyRequests, message, [maxAgeOption(retryAfterS)]);

/** RFC 7252 §5.9.3.4: 5.03 with Max-Age = seconds before retrying. */
export const unavailable = (limits: CoapLimits, message: string): Reply => diagnostic(Code.ServiceUnavailable, message, [maxAgeOption(limits.retryAfterS)]);

/** An HTTP-like status from the platform (PublishOutcome, Decision, PlatformError) as a CoAP response. */
export function platformStatus(status: number, message: string, limits: CoapLimits, retryAfterS?: number): Reply {
  switch (status) {
    case 400:
      return diagnostic(Code.BadRequest, message);
    case 401:
      return diagnostic(Code.Unauthorized, message);
    case 403:
      return diagnostic(Code.Forbidden, message);
    case 404:
      return diagnostic(Code.NotFound, message);
    case 413:
      // The platform's limit is the channel's (its maxPayloadBytes, often below ours), which the
      // platform does not tell: no Size1 rather than ours, which would invite a body the channel
      // refuses again. RFC 7252 §5.9.2.9 leaves Size1 out when the server cannot make it available.
      return diagnostic(Code.RequestEntityTooLarge, message);
    case 415:
      return diagnostic(Code.UnsupportedContentFormat, message);
    case 429:
      return tooManyRequests(retryAfterS ?? limits.retryAfterS, message);
  }
  if (status >= 500) return unavailable(limits, message);
  return diagnostic(Code.BadRequest, message);
}

/** Any failure while handling a request; never throws. Unexpected errors are 5.00 and logged. */
export function errorReply(e: unknown, limits: CoapLimits, log: Log): Reply {
  if (e instanceof PlatformError) return platformStatus(e.status, e.message, limits);
  if (e instanceof TopicError || e instanceof CoapFormatError) return diagnostic(Code.BadRequest, e.message);
  log.error('coap: request failed', { error: e instanceof Error ? e.stack ?? e.message : String(e) });
  return diagnostic(Code.InternalServerError, 'internal error');
}
