/**
 * The one API client the console uses — the SDK (sdk/), as every other application does — and the
 * signed-in user's session, kept in localStorage so a reload stays signed in. The SDK refreshes an
 * expired access token on its own; `onTokens` stores the new pair.
 */
import { Edgeflux, EdgefluxError, type Tokens } from '../../sdk';

interface Stored {
  email: string;
  access: string;
  refresh: string;
}
const KEY = 'edgeflux.session';
const listeners = new Set<() => void>();

function read(): Stored | null {
  try {
    return JSON.parse(localStorage.getItem(KEY) ?? 'null') as Stored | null;
  } catch {
    return null;
  }
}
let current = read();

function store(next: Stored | null): void {
  current = next;
  if (next) localStorage.setItem(KEY, JSON.stringify(next));
  else localStorage.removeItem(KEY);
  listeners.forEach((l) => l());
}

export const api = new Edgeflux({
  url: location.origin,
  token: current?.access,
  refreshToken: current?.refresh,
  onTokens: (t: Tokens) => {
    if (!current) return;
    // Another tab logged out (or in as someone else) while this refresh was on its way: that stays,
    // and what this refresh got is given back rather than stored over it.
    const stored = read();
    if (!stored || stored.email !== current.email) {
      current = stored;
      api.useTokens(stored ? { access_token: stored.access, refresh_token: stored.refresh } : null);
      void api.tokens.revoke(t.refresh_token).catch(() => undefined);
      listeners.forEach((l) => l());
      return;
    }
    store({ email: current.email, access: t.access_token, refresh: t.refresh_token });
  },
  // Every tab of the console holds this session: one that refreshed stored the newer pair, which
  // the others take instead of refreshing with a used token (that would end the session).
  currentTokens: () => {
    const s = read();
    return s && s.email === current?.email ? { access_token: s.access, refresh_token: s.refresh } : null;
  },
});

// Another tab refreshed, logged in or out: follow it (RFC 9700 §4.14.2 — a used refresh token given
// again ends the session, so tabs must not keep stale copies).
addEventListener('storage', (e) => {
  if (e.key !== KEY && e.key !== null) return;
  const next = read();
  if (next?.refresh === current?.refresh && next?.email === current?.email) return;
  current = next;
  api.useTokens(next ? { access_token: next.access, refresh_token: next.refresh } : null);
  listeners.forEach((l) => l());
});

export const session = {
  get: () => current,
  subscribe(l: () => void): () => void {
    listeners.add(l);
    return () => listeners.delete(l);
  },
  /** A 401 that survived the SDK's refresh means the session is over: back to the login form. */
  check(e: unknown): void {
    if (e instanceof EdgefluxError && e.status === 401 && current) {
      // Another tab may have refreshed meanwhile: take its pair rather than end the session.
      const stored = read();
      if (stored && stored.email === current.email && stored.refresh !== current.refresh && stored.refresh !== api.refreshToken) {
        current = stored;
        api.useTokens({ access_token: stored.access, refresh_token: stored.refresh });
        listeners.forEach((l) => l());
        return;
      }
      // Only a token that is still ours to use is revoked (never one whose refresh just failed: it may be spent).
      store(null);
    }
  },
};

export async function logIn(email: string, password: string): Promise<void> {
  const t = await api.login(email, password);
  store({ email, access: t.access_token, refresh: t.refresh_token });
}

export async function logOut(): Promise<void> {
  store(null);
  await api.logout().catch(() => undefined);
}
