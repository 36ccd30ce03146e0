import { beforeAll, describe, expect, it } from 'vitest';

/**
 * The console's session across tabs: a refresh answered after another tab logged out must not
 * sign this one back in. The order (answer before the other tab's `storage` event) cannot be made
 * to happen on purpose in a browser, so the browser's storage is stood in for here: a Map behind
 * the localStorage API, this tab's `storage` listener never called.
 */
const KEY = 'edgeflux.session';
const store = new Map<string, string>();
let session: typeof import('./session');
const revoked: string[] = [];
let storageEvent: (e: { key: string | null }) => void = () => undefined;

beforeAll(async () => {
  Object.assign(globalThis, {
    localStorage: { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => void store.set(k, v), removeItem: (k: string) => void store.delete(k) },
    location: { origin: 'http://console.test' },
    addEventListener: (type: string, l: (e: { key: string | null }) => void) => void (type === 'storage' && (storageEvent = l)),
  });
  store.set(KEY, JSON.stringify({ email: 'ada@example.com', access: 'a1', refresh: 'r1' }));
  session = await import('./session');
  // The revoke goes to the API: recorded instead (no server in this test).
  (session.api.tokens as { revoke: (t: string) => Promise<void> }).revoke = async (t) => void revoked.push(t);
});

const setTokens = (access: string, refresh: string) =>
  (session.api as unknown as { http: { setTokens(t: object): void } }).http.setTokens({ access_token: access, refresh_token: refresh, token_type: 'Bearer', expires_in: 900 });

describe('console session across tabs', () => {
  it('stores a refreshed pair while the stored session is still this one', () => {
    setTokens('a2', 'r2');
    expect(JSON.parse(store.get(KEY)!)).toEqual({ email: 'ada@example.com', access: 'a2', refresh: 'r2' });
    expect(session.session.get()?.refresh).toBe('r2');
  });

  it('does not sign back in after another tab logged out meanwhile: the refreshed pair is given back', () => {
    store.delete(KEY); // the other tab logged out; this tab has not seen the event yet
    setTokens('a3', 'r3'); // this tab's refresh, answered now
    expect(store.has(KEY)).toBe(false);
    expect(session.session.get()).toBeNull();
    expect(session.api.token).toBeUndefined();
    expect(revoked).toEqual(['r3']);
  });

  it('keeps another user who logged in meanwhile', () => {
    // Signed in as ada again (another tab's login, whose event this tab saw).
    store.set(KEY, JSON.stringify({ email: 'ada@example.com', access: 'a4', refresh: 'r4' }));
    storageEvent({ key: KEY });
    expect(session.session.get()?.email).toBe('ada@example.com');
    // Bob logs in in another tab; this tab's refresh as ada is answered before it sees that.
    store.set(KEY, JSON.stringify({ email: 'bob@example.com', access: 'b1', refresh: 'q1' }));
    setTokens('a5', 'r5');
    expect(JSON.parse(store.get(KEY)!)).toEqual({ email: 'bob@example.com', access: 'b1', refresh: 'q1' });
    expect(session.session.get()?.email).toBe('bob@example.com');
    expect(session.api.token).toBe('b1');
    expect(revoked).toEqual(['r3', 'r5']);
  });
});
