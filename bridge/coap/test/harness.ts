import { Code, Opt, Type, codeString, decode, decodeUint, encode, uintOption, uriPathOptions, uriQueryOptions, type CoapMessage, type CoapOption, type MessageType } from '../../../shared/coap';
import { createCoapServer, type CoapServer } from '../server';
import type { CoapLimits } from '../limits';
import type { Endpoint } from '../types';
import { FakeClock } from '../../testing/fake-clock';
import { MemoryPlatform } from './memory-platform';

export const text = (s: string): Uint8Array => new TextEncoder().encode(s);
export const str = (b: Uint8Array): string => new TextDecoder().decode(b);
export const opt = (m: CoapMessage, n: number): CoapOption | undefined => m.options.find((o) => o.number === n);
/** The uint value of option `n` of `m`, or undefined. */
export const uintOf = (m: CoapMessage, n: number): number | undefined => {
  const o = opt(m, n);
  return o && decodeUint(o.value);
};
export const summary = (m: CoapMessage): string => `${['CON', 'NON', 'ACK', 'RST'][m.type]} ${codeString(m.code)}`;

export interface RequestSpec {
  type?: MessageType;
  code?: number;
  mid?: number;
  token?: Uint8Array;
  path?: string;
  query?: string[];
  options?: CoapOption[];
  payload?: Uint8Array | string;
  contentFormat?: number;
  observe?: number;
}

/** A fake device: encodes requests into the server core and decodes what comes back to it. */
export class Client {
  readonly received: CoapMessage[] = [];
  private mid = 0x100;
  private tok = 0;

  constructor(readonly server: CoapServer, readonly endpoint: Endpoint = { address: '192.0.2.10', port: 40001, family: 'IPv4' }) {}

  raw(bytes: Uint8Array): void {
    this.server.handle(bytes, this.endpoint, (d) => this.received.push(decode(d)));
  }

  send(m: CoapMessage): CoapMessage {
    this.raw(encode(m));
    return m;
  }

  request(spec: RequestSpec): CoapMessage {
    const path = (spec.path ?? '').split('/').filter((s) => s !== '');
    const options = [...uriPathOptions(path), ...uriQueryOptions(spec.query ?? []), ...(spec.options ?? [])];
    if (spec.contentFormat !== undefined) options.push(uintOption(Opt.ContentFormat, spec.contentFormat));
    if (spec.observe !== undefined) options.push(uintOption(Opt.Observe, spec.observe));
    const payload = typeof spec.payload === 'string' ? text(spec.payload) : spec.payload ?? new Uint8Array();
    return this.send({ type: spec.type ?? Type.CON, code: spec.code ?? Code.GET, messageId: spec.mid ?? this.mid++, token: spec.token ?? Uint8Array.of(0xa0, ++this.tok), options, payload });
  }

  ack(m: CoapMessage): void {
    this.send({ type: Type.ACK, code: Code.Empty, messageId: m.messageId, token: new Uint8Array(), options: [], payload: new Uint8Array() });
  }

  rst(m: CoapMessage): void {
    this.send({ type: Type.RST, code: Code.Empty, messageId: m.messageId, token: new Uint8Array(), options: [], payload: new Uint8Array() });
  }

  /** Everything received since the last take. */
  take(): CoapMessage[] {
    return this.received.splice(0);
  }

  only(): CoapMessage {
    const all = this.take();
    if (all.length !== 1) throw new Error(`expected one message, got ${all.length}: ${all.map(summary).join(', ')}`);
    return all[0]!;
  }
}

export const KEY = 'key-dev-1';

export function setup(limits: Partial<CoapLimits> = {}) {
  const platform = new MemoryPlatform().addDevice('dev-1', KEY).addDevice('dev-2', 'key-dev-2').addChannel('c1', { publish: ['dev-1'], subscribe: ['dev-1', 'dev-2'] }).addChannel('c2', { subscribe: ['dev-1'] });
  const clock = new FakeClock(0);
  const server = createCoapServer({ platform, clock, limits, random: () => 0 });
  const client = new Client(server);
  return { platform, clock, server, client };
}
