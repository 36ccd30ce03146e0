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
  onTokens: (t: Tokens) => current && store({ email: current.email, access: t.access_token, refresh: t.refresh_token }),
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
      void api.logout().catch(() => undefined);
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
