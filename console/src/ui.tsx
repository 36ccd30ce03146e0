/** Small accessible building blocks shared by the console's pages. */
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useId, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { EdgefluxError, type Page } from '../../sdk';
import { takeFocusPending } from './router';
import { session } from './session';

/** A 404 from the API: the thing asked for is gone (or never was). */
export const isNotFound = (e: unknown): boolean => e instanceof EdgefluxError && e.status === 404;

export const errorText = (e: unknown): string => (e instanceof EdgefluxError ? `${e.detail} (${e.status} ${e.code})` : e instanceof Error ? e.message : String(e));

/** An error in one field of a form (its `name`), found before asking the API. */
export class FieldError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The form field an error is about: a FieldError's, or the first of an API problem's `errors` (the
 * request body's path, `scopes.0` → `scopes`); undefined when it names none.
 */
export function fieldOf(error: unknown): string | undefined {
  if (error instanceof FieldError) return error.field;
  if (!(error instanceof EdgefluxError) || !Array.isArray(error.problem.errors)) return undefined;
  const path = (error.problem.errors[0] as { path?: unknown } | undefined)?.path;
  return typeof path === 'string' && path ? path.split('.')[0] : undefined;
}

/** An error (or nothing) announced to screen readers as it appears; `id` lets the field it is about point at it. */
export function Problem({ error, id }: { error: unknown; id?: string }) {
  if (!error) return null;
  return (
    <p role="alert" class="problem" id={id}>
      {errorText(error)}
    </p>
  );
}

/** Loads with `load()` whenever `deps` change; `reload()` runs it again. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): { data: T | undefined; error: unknown; loading: boolean; reload: () => void } {
  const [state, setState] = useState<{ data: T | undefined; error: unknown; loading: boolean }>({ data: undefined, error: null, loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, error: null, loading: false }),
      (error: unknown) => {
        session.check(error);
        if (live) setState((s) => ({ data: s.data, error, loading: false }));
      },
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  // Loading from the click on: a control disabled while loading stays disabled until the new data is in.
  const reload = useCallback(() => {
    setState((s) => ({ ...s, loading: true }));
    setTick((t) => t + 1);
  }, []);
  return { ...state, reload };
}

/** Runs an action, holding its error and a busy flag for the form that started it. */
export function useAction(): { busy: boolean; error: unknown; run: (f: () => Promise<unknown>) => Promise<boolean>; clear: () => void } {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = async (f: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await f();
      return true;
    } catch (e) {
      session.check(e);
      setError(e);
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run, clear: () => setError(null) };
}

/**
 * Gives keyboard focus to the page's heading (its `h1`, focusable by script only): where a screen
 * reader starts on a page that has just come, and where focus goes when the control that held it is
 * gone (a deleted row's button). False when the page has no heading (yet).
 */
export function focusHeading(): boolean {
  const h = document.querySelector<HTMLElement>('main h1');
  if (!h) return false;
  h.tabIndex = -1;
  h.focus();
  return true;
}

/**
 * After a delete, a disconnect or a removal whose button goes with its row: the page's heading gets
 * focus when the answer comes only if focus is still on `trigger` (the control focused at the click),
 * or has fallen to the body (the row, and the control, went). Focus the user has moved meanwhile — into
 * a search box, say — stays where it is (WCAG 2.4.3, 3.2.1).
 */
export function focusHeadingIfLost(trigger: Element | null): boolean {
  const now = document.activeElement;
  if (now !== null && now !== document.body && now !== trigger) return false;
  return focusHeading();
}

/**
 * The page's `h1`. When a navigation, signing in or signing out asked for focus (`focusPending` in the
 * router), it takes it as it comes into the page — however late: after a "Loading…" or on a page that
 * shows only a message — unless the user has moved focus since (or is choosing in the org switcher).
 */
export function PageHeading({ children, id = 'page-title' }: { children: ComponentChildren; id?: string }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    if (!takeFocusPending()) return;
    // The org switcher navigates as it changes, and a keyboard may still be choosing.
    if (document.activeElement instanceof HTMLSelectElement) return;
    ref.current?.focus();
  }, []);
  return (
    <h1 id={id} ref={ref} tabIndex={-1}>
      {children}
    </h1>
  );
}

/** The browser tab's title (what a screen reader reads first, and the history and tab lists show): the page's, then the console's. */
export function useTitle(title: string): void {
  useEffect(() => {
    document.title = `${title} · Edgeflux console`;
  }, [title]);
}

/** A credential shown exactly once, with a copy button; the API never returns it again. */
export function SecretOnce({ label, value, onDone }: { label: string; value: string; onDone: () => void }) {
  // What Copy did: copied, or (no clipboard: a page over plain http from another machine) the key selected for Ctrl+C.
  const [copied, setCopied] = useState<'copied' | 'selected' | null>(null);
  const ref = useRef<HTMLElement>(null);
  // What had focus before (the button that asked for the secret) gets it back on Done, or else the
  // page's heading: never the page itself, where a keyboard user would start again from the top.
  const before = useRef<Element | null>(null);
  useEffect(() => {
    before.current = document.activeElement;
    ref.current?.focus();
  }, []);
  const done = () => {
    // Before the box goes, so focus never falls to the body on the way.
    const back = before.current;
    if (back instanceof HTMLElement && back !== document.body && back.isConnected) back.focus();
    else focusHeading();
    onDone();
  };
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value);
      setCopied('copied');
      return;
    } catch {
      // No clipboard API (not a secure context: http from another machine) or no permission: the text is
      // selected, and copied the old way if the browser still does that; if not, the user is told to.
    }
    const range = document.createRange();
    range.selectNodeContents(ref.current!);
    getSelection()?.removeAllRanges();
    getSelection()?.addRange(range);
    let done = false;
    try {
      done = document.execCommand('copy');
    } catch {
      done = false;
    }
    setCopied(done ? 'copied' : 'selected');
  };
  return (
    <section class="secret" aria-label={label}>
      <p>
        <strong>{label}</strong> — shown only now; copy it and keep it safe.
      </p>
      <code tabIndex={0} ref={ref} data-secret>
        {value}
      </code>
      <div class="row">
        <button type="button" onClick={copy}>
          {copied === 'copied' ? 'Copied' : 'Copy'}
        </button>
        <button type="button" class="quiet" onClick={done}>
          Done
        </button>
      </div>
      <p class="muted" aria-live="polite">
        {copied === 'copied' ? 'Copied to the clipboard.' : copied === 'selected' ? 'Not copied: the browser gives this page no clipboard. It is selected: press Ctrl+C (⌘C on a Mac) to copy it.' : ''}
      </p>
    </section>
  );
}

/**
 * A native modal dialog: focus moves in, Escape closes it, focus returns. It opens and closes as the
 * page renders (a layout effect), before other effects run: a secret shown as the dialog closes can
 * then take focus (while the dialog is modal the rest of the page is inert and cannot).
 */
export function Dialog({ title, open, onClose, children }: { title: string; open: boolean; onClose: () => void; children: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  const id = useId();
  useLayoutEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return (
    <dialog ref={ref} onClose={onClose} aria-labelledby={id}>
      <h2 id={id}>{title}</h2>
      {open && children}
    </dialog>
  );
}

/**
 * A table's box that scrolls sideways when the table does not fit (a narrow screen, a zoomed page).
 * While it overflows it is a named region in the tab order, so the keyboard can scroll it (arrow keys)
 * even when nothing in it takes focus (a viewer's list, a query's result); when it fits it is a plain box.
 * `label` names the region apart from the section around it and from its table's caption ("Devices table").
 */
export function Scroll({ label, children }: { label: string; children: ComponentChildren }) {
  const ref = useRef<HTMLDivElement>(null);
  const [overflows, setOverflows] = useState(false);
  useEffect(() => {
    const box = ref.current!;
    const check = () => setOverflows(box.scrollWidth > box.clientWidth + 1);
    const watch = new ResizeObserver(check);
    watch.observe(box);
    if (box.firstElementChild) watch.observe(box.firstElementChild);
    return () => watch.disconnect();
  }, []);
  return (
    <div ref={ref} class="scroll" {...(overflows ? { tabIndex: 0, role: 'region', 'aria-label': label } : {})}>
      {children}
    </div>
  );
}

/** Where a list stands: its count, or Previous / Next around the rows shown (announced as it changes, e.g. after a search). */
export function Pager({ total, offset, limit, onOffset }: { total: number; offset: number; limit: number; onOffset: (o: number) => void }) {
  if (total <= limit)
    return (
      <p class="muted" role="status">
        {total === 1 ? '1 item' : `${total} items`}
      </p>
    );
  return (
    <nav class="row pager" aria-label="Pages">
      <button type="button" disabled={offset === 0} onClick={() => onOffset(Math.max(0, offset - limit))}>
        Previous
      </button>
      <span role="status">
        {offset + 1}–{Math.min(offset + limit, total)} of {total}
      </span>
      <button type="button" disabled={offset + limit >= total} onClick={() => onOffset(offset + limit)}>
        Next
      </button>
    </nav>
  );
}

/** A page emptied by a delete (its only row, here or elsewhere): steps back to the last page that has rows. True while it does. */
export function useStepBack(page: Page<unknown> | undefined, setOffset: (offset: number) => void): boolean {
  const stepping = page !== undefined && page.items.length === 0 && page.offset > 0;
  useEffect(() => {
    if (page && stepping) setOffset(Math.max(0, Math.floor((page.total - 1) / page.limit) * page.limit));
  }, [page]);
  return stepping;
}

/** The API's largest page. */
export const MAX_PAGE = 100;

/**
 * A list's query: a page, and a search the API answers. The text typed is asked for once typing
 * pauses (250 ms), not at every key; a new search starts at the first page.
 */
export function useSearch(limit: number) {
  const [text, setText] = useState('');
  const [query, setQuery] = useState({ search: '', offset: 0, limit });
  useEffect(() => {
    const t = setTimeout(() => setQuery((q) => (q.search === text.trim() ? q : { ...q, search: text.trim(), offset: 0 })), 250);
    return () => clearTimeout(t);
  }, [text]);
  const setOffset = useCallback((offset: number) => setQuery((q) => ({ ...q, offset })), []);
  return { text, setText, query, setOffset };
}

/**
 * Every item of a paged list, 100 at a time: for a list needed whole (the org switcher). A row
 * moved to another page by a change made meanwhile is kept once (by id).
 */
export async function allPages<T extends { id: string }>(list: (q: { offset: number; limit: number }) => Promise<Page<T>>): Promise<T[]> {
  const items = new Map<string, T>();
  for (let offset = 0; ; offset += MAX_PAGE) {
    const page = await list({ offset, limit: MAX_PAGE });
    for (const item of page.items) items.set(item.id, item);
    if (page.items.length < MAX_PAGE || offset + MAX_PAGE >= page.total) return [...items.values()];
  }
}

/** Saves a blob as a file (an object URL clicked as a download link). */
export function saveFile(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export { num } from './format';

export const when = (ms: number | null | undefined): string => (ms ? new Date(ms).toLocaleString() : '—');

/** Parses a JSON object typed into the form field named `what`; throws a readable FieldError otherwise. */
export function parseObject(text: string, what: string): Record<string, unknown> | undefined {
  if (!text.trim()) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new FieldError(what, `${what} is not valid JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new FieldError(what, `${what} must be a JSON object`);
  return v as Record<string, unknown>;
}

export const splitList = (text: string): string[] =>
  text
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
