/** How the console shows a message's payload bytes, and what it calls them when saved. */

const HEX_BYTES = 512;

/**
 * Bytes as text when they are valid UTF-8 without control characters (other than tab and line
 * breaks) — a plain MQTT payload is often text sent as application/octet-stream — else as hex,
 * the first 512 bytes.
 */
export function showBytes(bytes: Uint8Array, maxChars = 2000): { as: 'utf-8' | 'hex'; text: string } {
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    if (!/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text)) return { as: 'utf-8', text: text.slice(0, maxChars) };
  } catch {
    // not UTF-8: hex below
  }
  const hex = Array.from(bytes.subarray(0, HEX_BYTES), (b) => b.toString(16).padStart(2, '0')).join(' ');
  return { as: 'hex', text: bytes.length > HEX_BYTES ? `${hex} …` : hex };
}

const EXTENSIONS: Record<string, string> = { json: 'json', 'senml+json': 'json', 'senml+cbor': 'cbor', cbor: 'cbor', plain: 'txt', csv: 'csv', xml: 'xml', png: 'png', jpeg: 'jpg', gif: 'gif', webp: 'webp', pdf: 'pdf' };

/** `message-42.png` for seq 42 of image/png; `.bin` when the type says nothing more. */
export function payloadFileName(seq: number, contentType: string): string {
  const subtype = /\/([^;\s]+)/.exec(contentType.toLowerCase())?.[1] ?? '';
  return `message-${seq}.${EXTENSIONS[subtype] ?? 'bin'}`;
}
