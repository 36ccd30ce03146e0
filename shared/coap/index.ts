/** CoAP (RFC 7252) message codec and option helpers, shared by the bridge and tests. */
export * from './constants';
export * from './codec';
export * from './options';
