/** Strict UTF-8 (no U+FFFD substitution): payloads under Payload Format Indicator 1, string fields of packets. */
export const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

export function validUtf8(bytes: Uint8Array): boolean {
  try {
    STRICT_UTF8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}
