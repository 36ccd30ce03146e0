/** Globally unique ids. UUIDv4 from WebCrypto: opaque, unguessable, valid in every address form. */
export const newId = (): string => crypto.randomUUID();
export const now = (): number => Date.now();
