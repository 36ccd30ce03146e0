/**
 * The part of node:zlib the worker and its tests use (wrangler.toml nodejs_compat; workerd implements
 * it). Declared here rather than by adding @types/node to the worker's types, which would bring
 * Node's globals (Buffer, process, its setTimeout) into code that runs in workerd.
 */
declare module 'node:zlib' {
  interface ZlibOptions {
    /** Past this many output bytes the call throws RangeError instead of inflating further. */
    maxOutputLength?: number;
    level?: number;
    /** How the input ends: `constants.Z_SYNC_FLUSH` leaves the stream open, at a byte boundary. */
    finishFlush?: number;
  }
  /** Decodes a gzip stream of one or more members (RFC 1952 §2.2). */
  export function gunzipSync(data: Uint8Array, options?: ZlibOptions): Uint8Array;
  /** Decodes a zlib stream (RFC 1950), HTTP's `deflate` coding (RFC 9110 §8.4.1.2). */
  export function inflateSync(data: Uint8Array, options?: ZlibOptions): Uint8Array;
  /** Encodes raw deflate blocks (RFC 1951), no zlib header or checksum. */
  export function deflateRawSync(data: Uint8Array, options?: ZlibOptions): Uint8Array;
  export const constants: { readonly Z_SYNC_FLUSH: number };
}
