/**
 * A tiny History-API router: paths are matched against patterns like `/o/:org/channels/:id`; links and
 * `navigate()` push state without a reload. The worker serves index.html for any console path (SPA
 * fallback in wrangler.toml), so every URL here can be bookmarked and reloaded.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';

const EVENT = 'edgeflux:navigate';
let visits = 0;

/** The path and query of the location (not its fragment: `#main` is a place in the page, not another page). */
const pathAndQuery = (): string => location.pathname + location.search;
// The path and query last shown: a popstate that leaves them as they were changed only the fragment.
let shown = typeof location === 'object' ? pathAndQuery() : '';

/**
 * Goes to `to`. Going to the page already shown (a click on the current section) adds no history
 * entry but still counts as a visit: the page starts afresh (first page, no filter, reloaded).
 */
export function navigate(to: string, replace = false): void {
  visits++;
  requestFocus();
  const same = to === pathAndQuery();
  history[replace || same ? 'replaceState' : 'pushState'](null, '', to);
  shown = pathAndQuery();
  dispatchEvent(new Event(EVENT));
}

/**
 * How many visits there were (navigate(), Back, Forward to another path or query): a key that remounts
 * the page on every visit, the current one too. A change of the fragment alone (the skip link's `#main`,
 * or Back from it) is no visit: the page keeps its state, and focus stays where the browser put it.
 */
export const visitCount = (): number => visits;

// Whether the next page's heading is to take keyboard focus as it comes (`PageHeading` in ui.tsx): asked
// for by a navigation (navigate(), Back, Forward), signing in or out; dropped once the user moves focus.
let focusPending = false;
export function requestFocus(): void {
  focusPending = true;
}
/** Whether focus was asked for; asking again is needed for the next heading. */
export function takeFocusPending(): boolean {
  const was = focusPending;
  focusPending = false;
  return was;
}
if (typeof addEventListener === 'function') {
  // The user moved focus (Tab, a click in a field) since: the heading that comes later leaves it there.
  addEventListener('focusin', () => {
    focusPending = false;
  });
  // Back and Forward are visits too: the page starts afresh and its heading takes focus. The browser
  // also fires popstate when only the fragment changes (a link to `#main`, Back from it): not a visit.
  addEventListener('popstate', () => {
    const now = pathAndQuery();
    if (now === shown) return;
    shown = now;
    visits++;
    requestFocus();
  });
}

/**
 * A `?next=` path to return to after logging in, if it stays on this origin: one leading slash, not
 * `//host` or `/\\host`, and still this origin once the URL parser has had its way (it drops tabs and
 * newlines: `/\t/host` is `//host`). Anything else goes home.
 */
export function safeNext(next: string | null, origin: string = location.origin): string {
  if (!next || !next.startsWith('/') || next.startsWith('//')) return '/';
  try {
    const url = new URL(next, origin);
    // Dot segments are resolved after the check above: `/..//host` comes out as `//host`.
    return url.origin === origin && !url.pathname.startsWith('//') ? url.pathname + url.search + url.hash : '/';
  } catch {
    return '/';
  }
}

/** A path without its trailing slashes (`/o/x/devices/` is `/o/x/devices`). */
const trimmed = (path: string): string => path.replace(/(.)\/+$/, '$1');

/** The current location (path + query), re-rendering on every navigation. */
export function useLocation(): URL {
  const [url, setUrl] = useState(() => new URL(location.href));
  useEffect(() => {
    const on = () => setUrl(new URL(location.href));
    addEventListener('popstate', on);
    addEventListener(EVENT, on);
    return () => {
      removeEventListener('popstate', on);
      removeEventListener(EVENT, on);
    };
  }, []);
  return url;
}

/** A path segment decoded; a malformed escape (`%E0%A4%A`) stays as typed instead of throwing. */
export function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** `/o/:org/x` against `/o/abc/x` → `{org: 'abc'}`; null when it does not match. */
export function match(pattern: string, path: string): Record<string, string> | null {
  const p = pattern.split('/');
  const s = path.replace(/\/+$/, '').split('/');
  if (p.length !== s.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    const want = p[i]!;
    const got = s[i]!;
    if (want.startsWith(':')) params[want.slice(1)] = decodeSegment(got);
    else if (want !== got) return null;
  }
  return params;
}

interface LinkProps {
  href: string;
  children: ComponentChildren;
  class?: string;
  'aria-label'?: string;
  /** Marks the link current beyond its own page (a section on one of its pages, e.g. Channels on a live view). */
  section?: boolean;
}

export function Link({ href, children, section, ...rest }: LinkProps) {
  const here = trimmed(useLocation().pathname) === trimmed(href);
  return (
    <a
      {...rest}
      href={href}
      aria-current={here ? 'page' : section ? 'true' : undefined}
      onClick={(e) => {
        if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(href);
      }}
    >
      {children}
    </a>
  );
}
