/** Types shared by the CoAP server's parts. */
import type { CoapOption } from '../../shared/coap';

/** Where a datagram came from (node:dgram's RemoteInfo has these fields). */
export interface Endpoint {
  address: string;
  port: number;
  family?: string;
}

/** Sends one datagram back to the endpoint the request came from. */
export type Send = (datagram: Uint8Array) => void;

/** `[2001:db8::1]:5683` or `192.0.2.1:5683`: the key of every per-endpoint table. */
export const endpointKey = (e: Endpoint): string => (e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`);

export interface Log {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export const silentLog: Log = { debug() {}, info() {}, warn() {}, error() {} };

/** A response (or notification) before the message layer gives it a type and a Message ID. */
export interface Reply {
  code: number;
  options?: CoapOption[];
  payload?: Uint8Array;
}

export type { Clock, Timer } from '../clock';
export { systemClock } from '../clock';
