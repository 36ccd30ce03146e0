/**
 * CoAP numbers: message types, codes, option numbers and their properties, content-formats,
 * transmission parameters. RFC 7252 unless noted; Observe is RFC 7641, Block1/Block2/Size2 are
 * RFC 7959, 4.29 is RFC 8516.
 */

/** RFC 7252 §3: the 2-bit message type. */
export const Type = { CON: 0, NON: 1, ACK: 2, RST: 3 } as const;
export type MessageType = (typeof Type)[keyof typeof Type];
export const TYPE_NAMES = ['CON', 'NON', 'ACK', 'RST'] as const;

/** RFC 7252 §3: code = class (3 bits) << 5 | detail (5 bits), written c.dd. */
export const code = (cls: number, detail: number): number => ((cls & 0x7) << 5) | (detail & 0x1f);
export const codeClass = (c: number): number => c >> 5;
export const codeDetail = (c: number): number => c & 0x1f;
export const codeString = (c: number): string => `${codeClass(c)}.${String(codeDetail(c)).padStart(2, '0')}`;

/** RFC 7252 §12.1 (+ RFC 7959 §2.9, RFC 8516 §3). */
export const Code = {
  Empty: code(0, 0),
  GET: code(0, 1),
  POST: code(0, 2),
  PUT: code(0, 3),
  DELETE: code(0, 4),
  Created: code(2, 1),
  Deleted: code(2, 2),
  Valid: code(2, 3),
  Changed: code(2, 4),
  Content: code(2, 5),
  Continue: code(2, 31),
  BadRequest: code(4, 0),
  Unauthorized: code(4, 1),
  BadOption: code(4, 2),
  Forbidden: code(4, 3),
  NotFound: code(4, 4),
  MethodNotAllowed: code(4, 5),
  NotAcceptable: code(4, 6),
  RequestEntityIncomplete: code(4, 8),
  PreconditionFailed: code(4, 12),
  RequestEntityTooLarge: code(4, 13),
  UnsupportedContentFormat: code(4, 15),
  TooManyRequests: code(4, 29),
  InternalServerError: code(5, 0),
  NotImplemented: code(5, 1),
  BadGateway: code(5, 2),
  ServiceUnavailable: code(5, 3),
  GatewayTimeout: code(5, 4),
  ProxyingNotSupported: code(5, 5),
} as const;

export const isRequestCode = (c: number): boolean => codeClass(c) === 0 && c !== Code.Empty;
export const isResponseCode = (c: number): boolean => codeClass(c) >= 2 && codeClass(c) <= 5;

/** RFC 7252 §5.10 table, RFC 7641 §2, RFC 7959 §2.1 / §4. */
export const Opt = {
  IfMatch: 1,
  UriHost: 3,
  ETag: 4,
  IfNoneMatch: 5,
  Observe: 6,
  UriPort: 7,
  LocationPath: 8,
  UriPath: 11,
  ContentFormat: 12,
  MaxAge: 14,
  UriQuery: 15,
  Accept: 17,
  LocationQuery: 20,
  Block2: 23,
  Block1: 27,
  Size2: 28,
  ProxyUri: 35,
  ProxyScheme: 39,
  Size1: 60,
  /** RFC 9175 §3: tells apart block-wise bodies of one resource from one endpoint. */
  RequestTag: 292,
} as const;

export type OptionFormat = 'empty' | 'opaque' | 'uint' | 'string';

export interface OptionDef {
  name: string;
  format: OptionFormat;
  repeatable: boolean;
  /** Value length range in bytes (RFC 7252 §5.4.3: outside it the option is treated as unrecognized). */
  min: number;
  max: number;
}

export const OPTION_DEFS: ReadonlyMap<number, OptionDef> = new Map<number, OptionDef>([
  [Opt.IfMatch, { name: 'If-Match', format: 'opaque', repeatable: true, min: 0, max: 8 }],
  [Opt.UriHost, { name: 'Uri-Host', format: 'string', repeatable: false, min: 1, max: 255 }],
  [Opt.ETag, { name: 'ETag', format: 'opaque', repeatable: true, min: 1, max: 8 }],
  [Opt.IfNoneMatch, { name: 'If-None-Match', format: 'empty', repeatable: false, min: 0, max: 0 }],
  [Opt.Observe, { name: 'Observe', format: 'uint', repeatable: false, min: 0, max: 3 }],
  [Opt.UriPort, { name: 'Uri-Port', format: 'uint', repeatable: false, min: 0, max: 2 }],
  [Opt.LocationPath, { name: 'Location-Path', format: 'string', repeatable: true, min: 0, max: 255 }],
  [Opt.UriPath, { name: 'Uri-Path', format: 'string', repeatable: true, min: 0, max: 255 }],
  [Opt.ContentFormat, { name: 'Content-Format', format: 'uint', repeatable: false, min: 0, max: 2 }],
  [Opt.MaxAge, { name: 'Max-Age', format: 'uint', repeatable: false, min: 0, max: 4 }],
  [Opt.UriQuery, { name: 'Uri-Query', format: 'string', repeatable: true, min: 0, max: 255 }],
  [Opt.Accept, { name: 'Accept', format: 'uint', repeatable: false, min: 0, max: 2 }],
  [Opt.LocationQuery, { name: 'Location-Query', format: 'string', repeatable: true, min: 0, max: 255 }],
  [Opt.Block2, { name: 'Block2', format: 'uint', repeatable: false, min: 0, max: 3 }],
  [Opt.Block1, { name: 'Block1', format: 'uint', repeatable: false, min: 0, max: 3 }],
  [Opt.Size2, { name: 'Size2', format: 'uint', repeatable: false, min: 0, max: 4 }],
  [Opt.ProxyUri, { name: 'Proxy-Uri', format: 'string', repeatable: false, min: 1, max: 1034 }],
  [Opt.ProxyScheme, { name: 'Proxy-Scheme', format: 'string', repeatable: false, min: 1, max: 255 }],
  [Opt.Size1, { name: 'Size1', format: 'uint', repeatable: false, min: 0, max: 4 }],
  [Opt.RequestTag, { name: 'Request-Tag', format: 'opaque', repeatable: true, min: 0, max: 8 }],
]);

/** RFC 7252 §5.4.6: odd option numbers are critical, bit 1 marks unsafe-to-forward. */
export const isCritical = (n: number): boolean => (n & 1) === 1;
export const isUnsafe = (n: number): boolean => (n & 2) === 2;
export const isNoCacheKey = (n: number): boolean => (n & 0x1e) === 0x1c;

export const optionName = (n: number): string => OPTION_DEFS.get(n)?.name ?? `Option-${n}`;

/** RFC 7252 §12.3 (+ RFC 7049 §7.4 cbor, RFC 8428 §12.3 SenML). */
export const ContentFormat = {
  TextPlain: 0,
  LinkFormat: 40,
  Xml: 41,
  OctetStream: 42,
  Exi: 47,
  Json: 50,
  Cbor: 60,
  SenmlJson: 110,
  SenmlCbor: 112,
} as const;

const CONTENT_TYPES: ReadonlyArray<readonly [number, string]> = [
  // RFC 7252 §12.3 Table 9 registers it with the space — and so WebSocket text and MQTT 5's UTF-8 payload indicator store it.
  [0, 'text/plain; charset=utf-8'],
  [40, 'application/link-format'],
  [41, 'application/xml'],
  [42, 'application/octet-stream'],
  [47, 'application/exi'],
  [50, 'application/json'],
  [60, 'application/cbor'],
  [110, 'application/senml+json'],
  [112, 'application/senml+cbor'],
];
const BY_NUMBER = new Map(CONTENT_TYPES);
const BY_TYPE = new Map(CONTENT_TYPES.map(([n, t]) => [t, n]));

/** The media type string of a Content-Format number, or undefined when not in the table. */
export const contentTypeOf = (format: number): string | undefined => BY_NUMBER.get(format);

/** JSON-based types: always UTF-8 (RFC 8259 §8.1), so a charset parameter says nothing (§11). */
const JSON_TYPES = new Set(['application/json', 'application/senml+json']);

/**
 * The Content-Format number of a media type, or undefined. Case and spaces around `;` are ignored;
 * `text/plain` without a charset, or with charset utf-8/us-ascii, is 0. `application/json` and
 * `application/senml+json` with such a charset keep their own numbers, 50 and 110: HTTP clients add
 * `; charset=utf-8` to JSON, RFC 8259 §11 says it "has no effect", and the platform checks such a
 * payload as JSON or SenML. Other parameters, or a parameter not written `name=value` (no spaces
 * around `=`, RFC 9110 §5.6.6), make the type unknown (RFC 7252 §12.3 registers exact strings).
 */
export function contentFormatOf(contentType: string): number | undefined {
  const [type = '', ...params] = contentType.toLowerCase().split(';').map((s) => s.trim());
  const ps = params.filter((p) => p !== '');
  if (ps.length === 0) return BY_TYPE.get(type) ?? (type === 'text/plain' ? 0 : undefined);
  const utf8 = ps.length === 1 && /^charset=(utf-8|us-ascii|"utf-8"|"us-ascii")$/.test(ps[0] ?? '');
  if (!utf8) return undefined;
  if (type === 'text/plain') return 0;
  return JSON_TYPES.has(type) ? BY_TYPE.get(type) : undefined;
}

/** RFC 7252 §4.8 and §4.8.2 (ms). */
export const TRANSMISSION = {
  ACK_TIMEOUT: 2000,
  ACK_RANDOM_FACTOR: 1.5,
  MAX_RETRANSMIT: 4,
  NSTART: 1,
  DEFAULT_LEISURE: 5000,
  MAX_TRANSMIT_SPAN: 45_000,
  MAX_TRANSMIT_WAIT: 93_000,
  MAX_LATENCY: 100_000,
  PROCESSING_DELAY: 2000,
  EXCHANGE_LIFETIME: 247_000,
  NON_LIFETIME: 145_000,
} as const;

/** RFC 7252 §4.6: without knowledge of the path MTU, a message should fit 1152 bytes, 1024 of payload. */
export const DEFAULT_MAX_MESSAGE_SIZE = 1152;
