/**
 * The signed-in user's tokens (localStorage, so a reload keeps the session) and the one API client
 * the console uses. An expired access token is traded for a new one with the refresh token, once.
 */
import { createClient, type Tokens } from './api';

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

export const session = {
  get: () => current,
  set(email: string, t: Tokens): void {
    current = { email, access: t.access_token, refresh: t.refresh_token };
    localStorage.setItem(KEY, JSON.stringify(current));
    listeners.forEach((l) => l());
  },
  clear(): void {
    current = null;
    localStorage.removeItem(KEY);
    listeners.forEach((l) => l());
  },
  subscribe(l: () => void): () => void {
    listeners.add(l);
    return () => listeners.delete(l);
  },
};

let refreshing: Promise<boolean> | null = null;
async function refresh(): Promise<boolean> {
  const s = current;
  if (!s) return false;
  try {
    session.set(s.email, await api.tokens.refresh(s.refresh));
    return true;
  } catch {
    session.clear(); // the refresh token is spent or revoked: back to the login form
    return false;
  }
}

export const api = createClient({
  baseUrl: '',
  token: () => current?.access,
  onUnauthorized: () => (refreshing ??= refresh().finally(() => (refreshing = null))),
});

export async function logIn(email: string, password: string): Promise<void> {
  session.set(email, await api.tokens.login({ email, password }));
}

export async function logOut(): Promise<void> {
  const s = current;
  session.clear();
  if (s) await api.tokens.revoke(s.refresh).catch(() => undefined);
}
