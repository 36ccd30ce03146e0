/** The bridge's CoAP front-end (docs/coap.md). */
export { createCoapServer, type CoapServer, type CoapServerOptions, type CoapStats } from './server';
export { DEFAULT_LIMITS, type CoapLimits, type Rate } from './limits';
export type { BoundAddress } from './udp';
export type { Clock, Endpoint, Log, Send, Timer } from './types';
