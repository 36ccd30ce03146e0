import { describe, expect, it } from 'vitest';
import { cborDecode, cborEncode } from './cbor';
import { utf8Bytes } from './envelope';
import { FORMAT, LINK_SUBPROTOCOL, LINK_SUBPROTOCOL_V1, LINK_SUBPROTOCOL_V2, LINK_SUBPROTOCOL_V3, LINK_SUBPROTOCOL_V4, LinkError, chooseLinkSubprotocol, decodeLinkFrame, encodeLinkFrame, encodeLinkOp, linkCarriesMqtt5, linkCarriesQos, linkCarriesShare, linkDialect, linkUsesRefs, type LinkOp } from './link';

const envelope = {
  channel: 'c1',
  seq: 12,
  created: 1_732_500_000_000,
  subtopic: 'a/b',
  publisher: 'dev',
  protocol: 'mqtt' as const,
  contentType: 'application/json',
  payload: utf8Bytes('{"x":1}'),
};

const ops: [string, LinkOp][] = [
  ['publish', { op: 'publish', id: 1, subtopic: 'a', publisher: 'dev', protocol: 'mqtt', contentType: 'text/plain', payload: utf8Bytes('hi'), retain: false }],
  ['publish with properties and expiry', { op: 'publish', id: 2, subtopic: '', publisher: 'dev', protocol: 'coap', contentType: 'application/octet-stream', payload: new Uint8Array([0, 1]), retain: true, properties: [['k', 'v'], ['k', 'w']], expiry: 60 }],
  ['publish with expiry only', { op: 'publish', id: 3, subtopic: 'x', publisher: 'dev', protocol: 'mqtt', contentType: 't/t', payload: new Uint8Array(), retain: false, expiry: 5 }],
  ['ack', { op: 'ack', id: 1, seq: 99, created: 1_732_500_000_000 }],
  ['nack', { op: 'nack', id: 2, status: 413, code: 'payload_too_large', reason: 'payload is 300000 bytes; the limit is 262144' }],
  ['subscribe', { op: 'subscribe', sub: 7, filter: 'a/#' }],
  ['subscribe with since and noLocal', { op: 'subscribe', sub: 8, filter: '+', since: 0, noLocal: 'dev' }],
  ['subscribe with noLocal only', { op: 'subscribe', sub: 9, filter: '#', noLocal: 'dev' }],
  ['suback', { op: 'suback', sub: 7, seq: 12 }],
  ['unsubscribe', { op: 'unsubscribe', sub: 7 }],
  ['unsuback', { op: 'unsuback', sub: 7 }],
  ['message', { op: 'message', subs: [7, 8], envelope, retained: false }],
  ['message retained with properties', { op: 'message', subs: [1], envelope, retained: true, properties: [['a', 'b']], expiry: 30 }],
  ['message published with RETAIN', { op: 'message', subs: [1], envelope, retained: false, retain: true }],
  ['gap', { op: 'gap', sub: 7, from: 1, to: 11 }],
  ['error', { op: 'error', code: 'bad_frame', reason: 'oops' }],
  ['error for a subscription', { op: 'error', code: 'invalid_filter', reason: 'x', sub: 4 }],
  ['consumed', { op: 'consumed', seq: 12 }],
  ['settled', { op: 'settled', frames: [1_733_000_000_000_007, 3, 4] }],
  ['frame', { op: 'frame', no: 1_733_000_000_000_007 }],
];

describe('link frames', () => {
  it.each(ops)('%s round-trips', (_name, op) => {
    expect(decodeLinkFrame(encodeLinkFrame([op]))).toEqual([op]);
  });

  it.each(ops)('%s round-trips with string references', (_name, op) => {
    expect(decodeLinkFrame(encodeLinkFrame([op, op], true))).toEqual([op, op]);
  });

  it('with string references, writes each repeated string once per frame', () => {
    const burst: LinkOp[] = Array.from({ length: 300 }, (_, i) => ({ op: 'publish', id: i, subtopic: 'room/1', publisher: `5bcf5488-fc88-4006-976a-74d0b81006b${i % 3}`, protocol: 'mqtt', contentType: 'application/senml+json', payload: utf8Bytes(`[{"v":${i}}]`), retain: false }));
    const plain = encodeLinkFrame(burst);
    const refs = encodeLinkFrame(burst, true);
    expect(decodeLinkFrame(refs)).toEqual(burst);
    expect(decodeLinkFrame(plain)).toEqual(burst);
    expect(refs.byteLength).toBeLessThan(plain.byteLength / 2);
    // The table, in first-occurrence order: room/1, publisher 0, mqtt, content type, publisher 1, publisher 2.
    const raw = cborDecode(refs) as unknown[][];
    expect(raw[0]!.slice(2, 6)).toEqual(['room/1', '5bcf5488-fc88-4006-976a-74d0b81006b0', 'mqtt', 'application/senml+json']);
    expect(raw[1]!.slice(2, 6)).toEqual([0, '5bcf5488-fc88-4006-976a-74d0b81006b1', 2, 3]);
    expect(raw[3]!.slice(2, 6)).toEqual([0, 1, 2, 3]);
    // References do not cross frames: each frame starts a table of its own.
    expect((cborDecode(encodeLinkFrame(burst.slice(3), true)) as unknown[][])[0]!.slice(2, 6)).toEqual(['room/1', '5bcf5488-fc88-4006-976a-74d0b81006b0', 'mqtt', 'application/senml+json']);
  });

  it('negotiates the newest subprotocol both sides speak', () => {
    expect(LINK_SUBPROTOCOL).toBe('edgeflux.link.v5');
    expect(chooseLinkSubprotocol([LINK_SUBPROTOCOL_V1, LINK_SUBPROTOCOL_V2, LINK_SUBPROTOCOL_V3, LINK_SUBPROTOCOL_V4, LINK_SUBPROTOCOL])).toBe(LINK_SUBPROTOCOL);
    // A bridge from before v5 offers v4 first: it gets v4.
    expect(chooseLinkSubprotocol([LINK_SUBPROTOCOL_V4, LINK_SUBPROTOCOL_V3, LINK_SUBPROTOCOL_V2, LINK_SUBPROTOCOL_V1])).toBe(LINK_SUBPROTOCOL_V4);
    // A bridge from before v4 offers v3 first: it gets v3.
    expect(chooseLinkSubprotocol([LINK_SUBPROTOCOL_V3, LINK_SUBPROTOCOL_V2, LINK_SUBPROTOCOL_V1])).toBe(LINK_SUBPROTOCOL_V3);
    expect(chooseLinkSubprotocol([LINK_SUBPROTOCOL_V1, LINK_SUBPROTOCOL_V2])).toBe(LINK_SUBPROTOCOL_V2);
    expect(chooseLinkSubprotocol([LINK_SUBPROTOCOL_V1])).toBe(LINK_SUBPROTOCOL_V1);
    expect(chooseLinkSubprotocol(['edgeflux.link.v9', 'chat'])).toBeUndefined();
    expect(chooseLinkSubprotocol([])).toBeUndefined();
    const all = [LINK_SUBPROTOCOL, LINK_SUBPROTOCOL_V4, LINK_SUBPROTOCOL_V3, LINK_SUBPROTOCOL_V2, LINK_SUBPROTOCOL_V1, undefined, null];
    expect(all.map(linkUsesRefs)).toEqual([true, true, true, true, false, false, false]);
    expect(all.map(linkCarriesQos)).toEqual([true, true, true, false, false, false, false]);
    expect(all.map(linkCarriesMqtt5)).toEqual([true, true, false, false, false, false, false]);
    expect(all.map(linkCarriesShare)).toEqual([true, false, false, false, false, false, false]);
  });

  describe('shared groups (v5)', () => {
    const shared: LinkOp = { op: 'subscribe', sub: 3, filter: '#', since: 4, share: 'g/channels/c/messages/#' };
    it('a subscription naming a group round-trips on a v5 link, after since and noLocal', () => {
      expect(decodeLinkFrame(encodeLinkFrame([shared], linkDialect(LINK_SUBPROTOCOL)))).toEqual([shared]);
      expect((cborDecode(encodeLinkFrame([shared], linkDialect(LINK_SUBPROTOCOL))) as unknown[][])[0]).toEqual([4, 3, '#', 4, null, 'g/channels/c/messages/#']);
    });
    it('is a plain subscription on an older link: an older actor never sees the element it would refuse', () => {
      const { share: _, ...plain } = shared as Extract<LinkOp, { op: 'subscribe' }>;
      expect(decodeLinkFrame(encodeLinkFrame([shared], linkDialect(LINK_SUBPROTOCOL_V4)))).toEqual([plain]);
    });
  });

  describe('publish QoS (v3)', () => {
    const withQos: LinkOp[] = [
      { op: 'publish', id: 1, subtopic: 'a', publisher: 'dev', protocol: 'mqtt', contentType: 'text/plain', payload: utf8Bytes('hi'), retain: false, qos: 0 },
      { op: 'publish', id: 2, subtopic: 'a', publisher: 'dev', protocol: 'mqtt', contentType: 'text/plain', payload: utf8Bytes('hi'), retain: true, properties: [['k', 'v']], expiry: 9, qos: 1 },
      { op: 'message', subs: [1], envelope, retained: false, qos: 0 },
      { op: 'message', subs: [1], envelope, retained: true, properties: [['a', 'b']], expiry: 30, retain: true, qos: 1 },
    ];
    const v3 = linkDialect(LINK_SUBPROTOCOL_V3);

    it('round-trips on a v3 link, after every other optional element', () => {
      expect(decodeLinkFrame(encodeLinkFrame(withQos, v3))).toEqual(withQos);
      const raw = cborDecode(encodeLinkFrame(withQos, v3)) as unknown[][];
      expect(raw[0]!.slice(7)).toEqual([false, null, null, 0]);
      expect(raw[2]!.at(-1)).toBe(0);
      expect(raw[2]!.length).toBe(15);
    });

    it('is never written on a v2 or v1 link, whose receivers refuse elements they do not know', () => {
      const bare = withQos.map((op) => {
        const { qos: _, ...rest } = op as LinkOp & { qos?: number };
        return rest as LinkOp;
      });
      for (const dialect of [linkDialect(LINK_SUBPROTOCOL_V2), linkDialect(LINK_SUBPROTOCOL_V1), true, false]) {
        const bytes = encodeLinkFrame(withQos, dialect);
        expect(decodeLinkFrame(bytes)).toEqual(bare);
        const raw = cborDecode(bytes) as unknown[][];
        expect(raw[0]!.length).toBe(8);
        expect(raw[2]!.length).toBe(11);
      }
    });

    it('2 is what absence means: read as absent, and not written', () => {
      expect(decodeLinkFrame(cborEncode([[1, 1, 'a', 'p', 'mqtt', 't', new Uint8Array(), false, null, null, 2]]))).toEqual([{ op: 'publish', id: 1, subtopic: 'a', publisher: 'p', protocol: 'mqtt', contentType: 't', payload: new Uint8Array(), retain: false }]);
      const op: LinkOp = { op: 'publish', id: 1, subtopic: 'a', publisher: 'p', protocol: 'mqtt', contentType: 't', payload: new Uint8Array(), retain: false };
      expect(encodeLinkOp(op, undefined, true)).toHaveLength(8);
    });

    it.each([
      ['a publish QoS of 3', [[1, 1, 'a', 'p', 'mqtt', 't', new Uint8Array(), false, null, null, 3]], /element 10 must be at most 2/],
      ['a message QoS that is not a number', [[8, [1], 'c', 1, 1, 's', 'p', 'mqtt', 't', new Uint8Array(), false, null, null, null, 'one']], /element 14 must be a non-negative integer/],
    ])('refuses %s', (_name, value, message) => {
      expect(() => decodeLinkFrame(cborEncode(value))).toThrow(message);
    });
  });

  describe('MQTT 5 format, Response Topic and Correlation Data (v4)', () => {
    const correlation = new Uint8Array([0, 0xff, 7]);
    const withMqtt5: LinkOp[] = [
      { op: 'publish', id: 1, subtopic: 'a', publisher: 'dev', protocol: 'mqtt', contentType: 'application/json', payload: utf8Bytes('{}'), retain: false, qos: 1, format: FORMAT.utf8 | FORMAT.ownContentType, responseTopic: 'channels/c2/messages/replies/dev', correlation },
      { op: 'publish', id: 2, subtopic: 'a', publisher: 'dev', protocol: 'mqtt', contentType: 'text/plain; charset=utf-8', payload: utf8Bytes('hi'), retain: false, format: FORMAT.utf8 },
      { op: 'publish', id: 3, subtopic: 'a', publisher: 'dev', protocol: 'mqtt', contentType: 'application/octet-stream', payload: utf8Bytes('x'), retain: false, correlation: new Uint8Array() },
      { op: 'message', subs: [1], envelope, retained: false, format: 0 },
      { op: 'message', subs: [1], envelope, retained: true, properties: [['a', 'b']], expiry: 30, retain: true, qos: 0, format: FORMAT.unspecified, responseTopic: 'channels/c1/messages/r', correlation },
      { op: 'message', subs: [2], envelope, retained: false, responseTopic: 'channels/c1/messages' },
      { op: 'publish', id: 4, subtopic: 'a', publisher: 'dev', protocol: 'mqtt', contentType: 'text/plain', payload: utf8Bytes('o'), retain: false, origin: 'dev\u0000client-1' },
      { op: 'publish', id: 5, subtopic: 'a', publisher: 'dev', protocol: 'mqtt', contentType: 'text/plain', payload: utf8Bytes('o'), retain: false, qos: 0, correlation, origin: 'dev\u0000client-2' },
    ];
    const v4 = linkDialect(LINK_SUBPROTOCOL);

    it('round-trip on a v4 link, after every other optional element, with or without string references', () => {
      expect(decodeLinkFrame(encodeLinkFrame(withMqtt5, v4))).toEqual(withMqtt5);
      expect(decodeLinkFrame(encodeLinkFrame(withMqtt5, { ...v4, refs: false }))).toEqual(withMqtt5);
      const raw = cborDecode(encodeLinkFrame(withMqtt5, v4)) as unknown[][];
      expect(raw[0]!.slice(8, 13)).toEqual([null, null, 1, 6, 'channels/c2/messages/replies/dev']);
      expect([...(raw[0]![13] as Uint8Array)]).toEqual([0, 0xff, 7]);
      expect(raw[1]!.slice(8)).toEqual([null, null, null, 2]);
      expect(raw[3]!.slice(11)).toEqual([null, null, null, null, 0]);
      expect(raw[5]!.length).toBe(17);
      // origin after the three MQTT 5 elements (null when none of them is there).
      expect(raw[6]!.slice(8)).toEqual([null, null, null, null, null, null, 'dev\u0000client-1']);
      expect(raw[7]!.length).toBe(15);
      expect(raw[7]![14]).toBe('dev\u0000client-2');
    });

    it('are never written on a v3, v2 or v1 link, whose receivers refuse elements they do not know', () => {
      const bare = withMqtt5.map((op) => {
        const { format: _f, responseTopic: _r, correlation: _c, origin: _o, ...rest } = op as LinkOp & Record<string, unknown>;
        return rest as LinkOp;
      });
      for (const dialect of [linkDialect(LINK_SUBPROTOCOL_V3), linkDialect(LINK_SUBPROTOCOL_V2), linkDialect(LINK_SUBPROTOCOL_V1), true, false]) {
        const decoded = decodeLinkFrame(encodeLinkFrame(withMqtt5, dialect));
        expect(decoded.map((op) => ({ ...op, qos: undefined }))).toEqual(bare.map((op) => ({ ...op, qos: undefined })));
        for (const op of cborDecode(encodeLinkFrame(withMqtt5, dialect)) as unknown[][]) expect(op.length).toBeLessThanOrEqual(op[0] === 1 ? 11 : 15);
      }
    });

    it('cost nothing when absent: the same bytes as on a v3 link', () => {
      const plain: LinkOp[] = [
        { op: 'publish', id: 1, subtopic: 'a', publisher: 'dev', protocol: 'mqtt', contentType: 'application/octet-stream', payload: utf8Bytes('21.5'), retain: false, qos: 0 },
        { op: 'message', subs: [1], envelope, retained: false, qos: 1 },
      ];
      expect(encodeLinkFrame(plain, v4)).toEqual(encodeLinkFrame(plain, linkDialect(LINK_SUBPROTOCOL_V3)));
    });

    it.each([
      ['a format with both indicator bits', [[1, 1, 'a', 'p', 'mqtt', 't', new Uint8Array(), false, null, null, null, 3]], /element 11 must be a format/],
      ['a format above 7', [[1, 1, 'a', 'p', 'mqtt', 't', new Uint8Array(), false, null, null, null, 8]], /element 11 must be a format/],
      ['a fractional format', [[8, [1], 'c', 1, 1, 's', 'p', 'mqtt', 't', new Uint8Array(), false, null, null, null, null, 1.5]], /element 15 must be a format/],
      ['a Response Topic that is not a string', [[1, 1, 'a', 'p', 'mqtt', 't', new Uint8Array(), false, null, null, null, null, 7]], /element 12 must be a string/],
      ['a Response Topic that refers to the string table', [[1, 1, 'a', 'p', 'mqtt', 't', new Uint8Array(), false, null, null, null, null, 0]], /element 12 must be a string/],
      ['Correlation Data that is text', [[8, [1], 'c', 1, 1, 's', 'p', 'mqtt', 't', new Uint8Array(), false, null, null, null, null, null, null, 'abc']], /element 17 must be a byte string of at most 65535 bytes/],
      ['Correlation Data over 65535 bytes', [[1, 1, 'a', 'p', 'mqtt', 't', new Uint8Array(), false, null, null, null, null, null, new Uint8Array(65_536)]], /element 13 must be a byte string of at most 65535/],
      ['an element after the Correlation Data of a message', [[8, [1], 'c', 1, 1, 's', 'p', 'mqtt', 't', new Uint8Array(), false, null, null, null, null, 1, 'channels/c/messages', new Uint8Array(1), 'x']], /unexpected element 18/],
      ['an origin that is not a string', [[1, 1, 'a', 'p', 'mqtt', 't', new Uint8Array(), false, null, null, null, null, null, null, 7]], /element 14 must be a string/],
      ['an element after the origin', [[1, 1, 'a', 'p', 'mqtt', 't', new Uint8Array(), false, null, null, 1, 0, 'channels/c/messages', new Uint8Array(1), 'o', 'x']], /unexpected element 15/],
    ])('refuses %s', (_name, value, message) => {
      expect(() => decodeLinkFrame(cborEncode(value))).toThrow(LinkError);
      expect(() => decodeLinkFrame(cborEncode(value))).toThrow(message);
    });
  });

  it('batches many ops in one frame, in order', () => {
    const all = ops.map(([, op]) => op);
    expect(decodeLinkFrame(encodeLinkFrame(all))).toEqual(all);
  });

  it('omits trailing optional elements on the wire', () => {
    expect(encodeLinkOp({ op: 'subscribe', sub: 1, filter: '#' })).toEqual([4, 1, '#']);
    expect(encodeLinkOp({ op: 'subscribe', sub: 1, filter: '#', noLocal: 'd' })).toEqual([4, 1, '#', null, 'd']);
  });

  it('an empty frame is an empty list', () => {
    expect(decodeLinkFrame(encodeLinkFrame([]))).toEqual([]);
  });

  const bad: [string, unknown, RegExp][] = [
    ['a map', { op: 1 }, /array of ops/],
    ['an op that is not an array', [5], /op 0: must be a non-empty array/],
    ['an unknown opcode', [[99, 1]], /unknown opcode 99/],
    ['a publish with a string id', [[1, 'x', 'a', 'p', 'mqtt', 't', new Uint8Array(), false]], /op 0 \(publish\): element 1/],
    ['a publish with a text payload', [[1, 1, 'a', 'p', 'mqtt', 't', 'text', false]], /element 6 must be a byte string/],
    ['a publish with an unknown protocol', [[1, 1, 'a', 'p', 'amqp', 't', new Uint8Array(), false]], /element 4 must be one of/],
    ['a negative seq', [[11, -1]], /non-negative integer/],
    ['a fractional seq', [[11, 1.5]], /non-negative integer/],
    ['an expiry over 2^32-1', [[1, 1, 'a', 'p', 'mqtt', 't', new Uint8Array(), false, null, 2 ** 32]], /at most 4294967295/],
    ['malformed properties', [[1, 1, 'a', 'p', 'mqtt', 't', new Uint8Array(), false, [['k']]]], /pairs/],
    ['extra elements', [[6, 1, 'extra']], /unexpected element 2/],
    ['a missing element', [[2, 1, 2]], /element 3/],
    ['a reference before any string', [[1, 1, 0, 'p', 'mqtt', 't', new Uint8Array(), false]], /op 0 \(publish\): element 2 must be a string, or a reference to one of the frame's 0 strings so far/],
    ['a reference past the table', [[1, 1, 'a', 'p', 'mqtt', 't', new Uint8Array(), false], [1, 2, 0, 4, 'mqtt', 't', new Uint8Array(), false]], /op 1 \(publish\): element 3 must be a string, or a reference to one of the frame's 4 strings/],
    ['a negative reference', [[1, 1, 'a', -1, 'mqtt', 't', new Uint8Array(), false]], /element 3 must be a string, or a reference/],
    ['a fractional reference', [[1, 1, 'a', 'p', 'mqtt', 't', new Uint8Array(), false], [1, 2, 0.5, 'p', 'mqtt', 't', new Uint8Array(), false]], /op 1 \(publish\): element 2 must be a string, or a reference/],
    ['a protocol that refers to a string that is not one', [[1, 1, 'a', 'p', 0, 't', new Uint8Array(), false]], /element 4 must be one of/],
    ['a reference where only strings go (a filter)', [[1, 1, 'a', 'p', 'mqtt', 't', new Uint8Array(), false], [4, 1, 0]], /op 1 \(subscribe\): element 2 must be a string/],
  ];
  it.each(bad)('refuses %s with a LinkError naming the op and element', (_name, value, message) => {
    const bytes = cborEncode(value);
    expect(() => decodeLinkFrame(bytes)).toThrow(LinkError);
    expect(() => decodeLinkFrame(bytes)).toThrow(message);
  });

  it('refuses bytes that are not CBOR', () => {
    expect(() => decodeLinkFrame(new Uint8Array([0xff, 0x00]))).toThrow(LinkError);
    expect(() => decodeLinkFrame(new Uint8Array())).toThrow(LinkError);
    // Huge declared array length with no data behind it: refused without allocating.
    expect(() => decodeLinkFrame(new Uint8Array([0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))).toThrow(LinkError);
  });

  // After mqtt-packet's testRandom.js: untrusted bytes must give ops or a LinkError, never a crash.
  it('never throws anything but LinkError on random input', () => {
    let seed = 0x2f6b_1e35;
    const rand = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 2 ** 32;
    };
    const all = ops.map(([, op]) => op);
    const v4 = all.map((op, k) => (op.op === 'publish' || op.op === 'message' ? { ...op, qos: k % 2, format: k % 8 === 3 ? 0 : k % 8, responseTopic: `channels/c/messages/r${k}`, correlation: new Uint8Array([k, 0, 255]), ...(op.op === 'publish' ? { origin: `dev\u0000client-${k}` } : {}) } : op)) as LinkOp[];
    const frames = [
      encodeLinkFrame(all),
      encodeLinkFrame([...all, ...all], true),
      encodeLinkFrame(all.map((op, k) => (op.op === 'publish' || op.op === 'message' ? { ...op, qos: k % 2 } : op)) as LinkOp[], linkDialect(LINK_SUBPROTOCOL_V3)),
      encodeLinkFrame(v4, linkDialect(LINK_SUBPROTOCOL)),
    ];
    // The v4 frame as it is: it round-trips before it is mutated.
    expect(decodeLinkFrame(frames[3]!)).toEqual(v4);
    let decoded = 0;
    for (let i = 0; i < 20_000; i++) {
      let bytes: Uint8Array;
      if (i % 2 === 0) {
        bytes = new Uint8Array(Math.floor(rand() * 64)).map(() => Math.floor(rand() * 256));
        if (bytes.length > 0) bytes[0] = 0x80 | Math.floor(rand() * 0x20); // usually an array head
      } else {
        // Mutate a valid frame: flip, truncate or splice bytes.
        const valid = frames[(i >> 1) % frames.length]!;
        bytes = valid.slice(0, Math.max(1, Math.floor(rand() * valid.length) + 1));
        for (let k = 0; k < 3; k++) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      }
      try {
        const result = decodeLinkFrame(bytes);
        expect(Array.isArray(result)).toBe(true);
        decoded++;
      } catch (e) {
        if (!(e instanceof LinkError)) throw new Error(`non-LinkError for ${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}: ${String(e)}`);
      }
    }
    // The mutation keeps some frames valid, so both paths were exercised.
    expect(decoded).toBeGreaterThan(0);
  });
});
