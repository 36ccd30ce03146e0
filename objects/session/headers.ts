/** Internal request header, set only by the worker: the session key (principal id, NUL, client id), URL-encoded. */
export const HEADER_SESSION_KEY = 'x-edgeflux-session';
