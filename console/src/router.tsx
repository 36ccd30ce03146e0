/**
 * A tiny History-API router: paths are matched against patterns like `/o/:org/channels/:id`; links and
 * `navigate()` push state without a reload. The worker serves index.html for any console path (SPA
 * fallback in wrangler.toml), so every URL here can be bookmarked and reloaded.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';

const EVENT = 'edgeflux:navigate';

export function navigate(to: string, replace = false): void {
  if (to === location.pathname + location.search) return;
  history[replace ? 'replaceState' : 'pushState'](null, '', to);
  dispatchEvent(new Event(EVENT));
}

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
}

export function Link({ href, children, ...rest }: LinkProps) {
  const current = useLocation().pathname === href;
  return (
    <a
      {...rest}
      href={href}
      aria-current={current ? 'page' : undefined}
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
