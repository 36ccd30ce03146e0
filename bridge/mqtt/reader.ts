import type { Duplex } from 'node:stream';
import { utf8Text } from '../../shared/envelope';
import mqtt, { type Packet } from 'mqtt-packet';
import constants from 'mqtt-packet/constants.js';
import type { MqttLimits } from './limits';

/** Remaining Length → whole packet size (fixed header included), as Maximum Packet Size counts it. */
export const packetSize = (remaining: number): number => remaining + 1 + (remaining < 128 ? 1 : remaining < 16_384 ? 2 : remaining < 2_097_152 ? 3 : 4);

export interface ReaderEvents {
  /** One packet; the next is not handed over before the returned promise settles (arrival order). May be called synchronously from the socket's data event. */
  handle(packet: Packet): Promise<void> | void;
  /** Anything arrived (keep alive). */
  seen(): void;
  malformed(message: string): void;
  /** `v5Connect`: the oversized packet is an MQTT 5 CONNECT (it can be told CONNACK 0x95). */
  tooLarge(size: number, v5Connect: boolean): void;
  /** A handler threw. */
  failed(e: unknown, packet: Packet): void;
}

/**
 * The byte queue mqtt-packet's parser reads from, in place of its `bl` BufferList: one contiguous
 * buffer and an offset. `bl` answers every readUInt8 by slicing out a new Buffer, and mqtt-packet
 * reads a PUBLISH byte by byte — in the bridge's profile that garbage was a third of the process's
 * time. Here a read is an index, and a slice is a view (as `bl` gives within one buffer). Only a
 * packet split across TCP reads is copied, once, when its rest arrives.
 */
/** One empty buffer for every idle queue (each `Buffer.alloc(0)` is its own ArrayBuffer, ~300 bytes). */
const EMPTY = Buffer.alloc(0);

class FlatBytes {
  private buf: Buffer = EMPTY;
  private off = 0;

  get length(): number {
    return this.buf.length - this.off;
  }

  append(chunk: Buffer): this {
    if (this.length === 0) {
      this.buf = chunk;
      this.off = 0;
    } else {
      this.buf = Buffer.concat([this.buf.subarray(this.off), chunk]);
      this.off = 0;
    }
    return this;
  }

  /** Clears `mask`'s bits of the byte at `offset` (in place: the bytes are the connection's own). */
  clearBits(offset: number, mask: number): void {
    const i = this.off + offset;
    if (i < this.buf.length) this.buf[i] = this.buf[i]! & ~mask;
  }

  consume(bytes: number): this {
    const n = Math.trunc(bytes);
    if (n > 0) this.off = Math.min(this.buf.length, this.off + n);
    if (this.off === this.buf.length) (this.buf = EMPTY), (this.off = 0);
    return this;
  }

  private range(start = 0, end = this.length): [number, number] {
    const s = Math.max(0, Math.min(start, this.length));
    const e = Math.max(s, Math.min(end, this.length));
    return [this.off + s, this.off + e];
  }

  slice(start?: number, end?: number): Buffer {
    const [s, e] = this.range(start, end);
    return this.buf.subarray(s, e);
  }

  /**
   * mqtt-packet reads every UTF-8 string field (topics, filters, client id, content type, user
   * properties…) through here. Ill-formed UTF-8 makes the packet malformed [MQTT-1.5.4-1]: Node
   * would put U+FFFD in its place and a topic nobody sent would be stored. A U+FFFD in the result
   * is rare, so only then are the bytes checked strictly (a well-formed U+FFFD stays). U+0000 is
   * refused too [MQTT-1.5.4-2].
   */
  toString(encoding: BufferEncoding = 'utf8', start?: number, end?: number): string {
    const [s, e] = this.range(start, end);
    const text = this.buf.toString(encoding, s, e);
    if (encoding !== 'utf8') return text;
    if (text.includes('\uFFFD') && utf8Text(this.buf.subarray(s, e)) === null) throw new Error('a UTF-8 string field is not well-formed UTF-8 [MQTT-1.5.4-1]');
    // U+0000 is well-formed but not allowed in a string: a malformed packet (3.1.1: close) [MQTT-1.5.4-2].
    if (text.includes('\u0000')) throw new Error('a UTF-8 string field contains U+0000 [MQTT-1.5.4-2]');
    return text;
  }

  // Out of range these throw RangeError, as Buffer's (and so bl's) do.
  readUInt8(offset = 0): number {
    return this.buf.readUInt8(this.at(offset, 1));
  }

  readUInt16BE(offset = 0): number {
    return this.buf.readUInt16BE(this.at(offset, 2));
  }

  readUInt32BE(offset = 0): number {
    return this.buf.readUInt32BE(this.at(offset, 4));
  }

  private at(offset: number, size: number): number {
    if (offset < 0 || offset + size > this.length) throw new RangeError(`offset ${offset} is out of range`);
    return this.off + offset;
  }
}

type Parser = ReturnType<typeof mqtt.parser>;
type ParserInternals = {
  _list: unknown;
  _pos: number;
  _resetState(): void;
  _parseProperties(): Record<string, unknown> | false;
  _parseVarByteNum(): number | false;
  _parseByte(): number | undefined;
  _parseByType(type: string | undefined): unknown;
  _emitError(e: Error): void;
  _parseHeader(): boolean;
  settings: { protocolVersion?: number; bridgeMode?: boolean };
  parser(): Parser;
};

/** mqtt-packet's Parser class (the package exports only a factory). */
const MqttParser = Object.getPrototypeOf(mqtt.parser()).constructor as new () => Parser & ParserInternals;

/** An mqtt-packet parser reading from FlatBytes (also after it resets itself on an error). A subclass: no per-parser closures. */
class FlatParser extends MqttParser {
  /** Whose packets these are (the parser's listeners are shared by every reader). */
  reader: PacketReader | null = null;

  override _resetState(): void {
    super._resetState();
    this._list = new FlatBytes();
  }

  /**
   * MQTT 3.1 (§2.1) sets DUP on a re-sent PUBREL, SUBSCRIBE or UNSUBSCRIBE (Paho Java does, restoring
   * a session); 3.1.1 made their flags a fixed 0010 [MQTT-2.2.2-1], which mqtt-packet holds every
   * level to, closing such a 3.1 connection (its will published, again at every reconnect). For a 3.1
   * connection that DUP is cleared before mqtt-packet reads the header, as Mosquitto skips the check
   * for 3.1; the packet is handled as the 3.1.1 one it is.
   */
  override _parseHeader(): boolean {
    if (this.settings.protocolVersion === 3) {
      const list = this._list as unknown as FlatBytes;
      const zero = list.readUInt8(0);
      const type = zero >> 4;
      if ((type === 6 || type === 8 || type === 10) && (zero & 0x0f) === 0x0a) list.clearBits(0, 0x08);
    }
    return super._parseHeader();
  }

  /**
   * mqtt-packet's own property reader but for one test: a property already read is a repeat when it
   * is *present*, not when its first value is truthy. mqtt-packet turns a repeat into an array only
   * if the first value was truthy, so Subscription Identifier 0 followed by 5 came out as 5, a
   * Session Expiry Interval 0 then 300 as 300, a user property "" then "x" as "x" alone: a protocol
   * error hidden [MQTT 5 §2.2.2.2] (wellformed.ts refuses the arrays) and a user property lost.
   */
  override _parseProperties(): Record<string, unknown> | false {
    const length = this._parseVarByteNum();
    const end = this._pos + (length || 0);
    const result: Record<string, unknown> = {};
    while (this._pos < end) {
      const code = this._parseByte();
      if (!code) {
        this._emitError(new Error('Cannot parse property code type'));
        return false;
      }
      const name = constants.propertiesCodes[code];
      if (!name) {
        this._emitError(new Error('Unknown property'));
        return false;
      }
      const value = this._parseByType(constants.propertiesTypes[name]);
      if (name === 'userProperties') {
        const pair = value as { name: string; value: string };
        add((result.userProperties ??= Object.create(null)) as Record<string, unknown>, pair.name, pair.value);
      } else add(result, name, value);
    }
    // A property that began inside the Property Length and ended past it took bytes of what follows
    // (the payload, a topic filter): malformed [MQTT-2.2.2], where mqtt-packet read on.
    if (this._pos !== end) {
      this._emitError(new Error(PROPERTY_OVERRUN));
      return false;
    }
    return result;
  }
}

/** The error of a property that runs past the Property Length (the random-input test knows it). */
export const PROPERTY_OVERRUN = 'a property runs past the Property Length';

/** A value under `key`; a second one makes an array of them (as mqtt-packet does). */
function add(into: Record<string, unknown>, key: string, value: unknown): void {
  const had = into[key];
  if (had === undefined) into[key] = value;
  else if (Array.isArray(had)) had.push(value);
  else into[key] = [had, value];
}

export function flatParser(): Parser {
  return new FlatParser().parser();
}

/**
 * Bytes → packets → handlers, one at a time. Oversized packets are refused from their fixed
 * header, before the body is buffered; a client that floods faster than its packets are handled
 * is paused (TCP back-pressure) until the backlog halves.
 */
const READER = Symbol('packet reader');
type ReaderStream = Duplex & { [READER]?: PacketReader };
/** A settled promise: where each reader's chain of handled packets starts. */
const SETTLED = Promise.resolve();

export class PacketReader {
  private readonly parser = new FlatParser().parser() as FlatParser;
  private work: Promise<void> = SETTLED;
  private pending = 0;
  private pendingBytes = 0;
  private paused = false;
  private stopped = false;
  /** The first bytes, to find the protocol level of a CONNECT too large to parse. */
  private head: Buffer | null = EMPTY;

  constructor(
    private readonly stream: Duplex,
    private readonly limits: Pick<MqttLimits, 'maxPacketSize' | 'maxPendingPackets'>,
    private readonly events: ReaderEvents,
  ) {
    // Listeners shared by every reader (`this` is the emitter): an idle connection holds no closures for them.
    this.parser.reader = this;
    this.parser.on('packet', PacketReader.onPacket);
    this.parser.on('error', PacketReader.onParseError);
    (stream as ReaderStream)[READER] = this;
    stream.on('data', PacketReader.onData);
  }

  private static onData(this: ReaderStream, chunk: Buffer): void {
    this[READER]?.push(chunk);
  }
  private static onPacket(this: FlatParser, p: Packet): void {
    this.reader?.packet(p);
  }
  private static onParseError(this: FlatParser, e: Error): void {
    const reader = this.reader;
    reader?.fail(() => reader.events.malformed(e.message));
  }

  /** Settles once every packet received so far has been handled. */
  idle(): Promise<void> {
    return this.work;
  }

  stop(): void {
    this.stopped = true;
  }

  private fail(report: () => void): void {
    if (this.stopped) return;
    this.stopped = true;
    report();
  }

  private push(chunk: Buffer): void {
    if (this.stopped || chunk.length === 0) return;
    // [MQTT-3.1.0-1] the first packet must be CONNECT: no need to wait for the rest of anything else.
    if (this.head?.length === 0 && chunk[0]! >> 4 !== 1) return this.fail(() => this.events.malformed('the first packet is not CONNECT [MQTT-3.1.0-1]'));
    if (this.head && this.head.length < 16) this.head = Buffer.concat([this.head, chunk]).subarray(0, 16);
    try {
      this.parser.parse(chunk);
    } catch (e) {
      return this.fail(() => this.events.malformed(e instanceof Error ? e.message : String(e)));
    }
    const declared = (this.parser as unknown as { packet?: { length?: number } }).packet?.length ?? -1;
    if (declared >= 0) this.checkSize(declared);
  }

  private checkSize(remaining: number): boolean {
    const size = packetSize(remaining);
    if (size <= this.limits.maxPacketSize) return true;
    // A CONNECT's protocol level follows its 1–4 byte length and "\0\4MQTT".
    const h = this.head;
    let i = 1;
    while (h && i < 5 && (h[i] ?? 0) & 0x80) i++;
    const v5Connect = !!h && h[0] === 0x10 && h[i + 7] === 5;
    this.fail(() => this.events.tooLarge(size, v5Connect));
    return false;
  }

  private packet(packet: Packet): void {
    if (this.stopped || (packet.length !== undefined && !this.checkSize(packet.length))) return;
    this.head = null;
    // mqtt-packet keeps the whole CONNECT (password, will payload) as its settings for the life of
    // the connection; it reads only these two fields of it.
    if (packet.cmd === 'connect') (this.parser as unknown as ParserInternals).settings = { protocolVersion: packet.protocolVersion, bridgeMode: (packet as { bridgeMode?: boolean }).bridgeMode };
    this.events.seen();
    const bytes = packet.length ?? 0;
    this.pending++;
    this.pendingBytes += bytes;
    // Bounded by count and by bytes: a client cannot park more than this in the bridge's memory.
    if ((this.pending > this.limits.maxPendingPackets || this.pendingBytes > this.byteCap) && !this.paused) {
      this.paused = true;
      this.stream.pause();
    }
    if (this.pending > 1) {
      this.work = this.work.then(() => this.run(packet, bytes));
      return;
    }
    // Nothing before it still being handled: handle it now, and chain only what it leaves pending
    // (most PUBLISHes leave nothing: no promise, no turn of the microtask queue per packet).
    this.work = this.run(packet, bytes) ?? this.work;
  }

  /** Handles one packet; a promise only when the handler left one pending. Never rejects. */
  private run(packet: Packet, bytes: number): Promise<void> | undefined {
    let result: Promise<void> | void;
    try {
      result = this.stopped ? undefined : this.events.handle(packet);
    } catch (e) {
      this.failed(e, packet, bytes);
      return;
    }
    if (!result) return void this.done(bytes);
    return result.then(
      () => this.done(bytes),
      (e: unknown) => this.failed(e, packet, bytes),
    );
  }

  private get byteCap(): number {
    return Math.max(1024 * 1024, 2 * this.limits.maxPacketSize);
  }

  private done(bytes: number): void {
    this.pending--;
    this.pendingBytes -= bytes;
    if (this.paused && !this.stopped && this.pending <= this.limits.maxPendingPackets / 2 && this.pendingBytes <= this.byteCap / 2) {
      this.paused = false;
      this.stream.resume();
    }
  }

  private failed(e: unknown, packet: Packet, bytes: number): void {
    this.done(bytes);
    this.events.failed(e, packet);
  }
}
