import { describe, expect, it } from 'vitest';
import { payloadFileName, showBytes } from './payload';

const bytes = (s: string) => new TextEncoder().encode(s);

describe('payload display', () => {
  it('shows UTF-8 bytes as text (a plain MQTT payload sent as octet-stream)', () => {
    expect(showBytes(bytes('hello-mqtt'))).toEqual({ as: 'utf-8', text: 'hello-mqtt' });
    expect(showBytes(bytes('grüße\n\tλ'))).toEqual({ as: 'utf-8', text: 'grüße\n\tλ' });
    expect(showBytes(new Uint8Array())).toEqual({ as: 'utf-8', text: '' });
  });

  it('shows bytes that are not UTF-8, or control characters, as hex', () => {
    expect(showBytes(new Uint8Array([0xff, 0x00, 0x10]))).toEqual({ as: 'hex', text: 'ff 00 10' });
    expect(showBytes(new Uint8Array([0x68, 0x00, 0x69]))).toEqual({ as: 'hex', text: '68 00 69' });
    expect(showBytes(new Uint8Array([0xe2, 0x82]))).toEqual({ as: 'hex', text: 'e2 82' }); // a cut-off sequence
  });

  it('shows at most 512 bytes of hex', () => {
    const shown = showBytes(new Uint8Array(600).fill(0x80));
    expect(shown.as).toBe('hex');
    expect(shown.text.endsWith(' …')).toBe(true);
    expect(shown.text.split(' ')).toHaveLength(513);
  });

  it('names a saved payload by seq and content type', () => {
    expect(payloadFileName(7, 'application/octet-stream')).toBe('message-7.bin');
    expect(payloadFileName(7, 'image/png')).toBe('message-7.png');
    expect(payloadFileName(7, 'application/senml+json')).toBe('message-7.json');
    expect(payloadFileName(7, 'text/plain; charset=utf-8')).toBe('message-7.txt');
    expect(payloadFileName(7, '')).toBe('message-7.bin');
  });
});
