import type { ComponentChildren } from 'preact';
import { useEffect, useId, useRef, useState } from 'preact/hooks';
import type { DeviceListQuery, ListQuery, Page } from '../../../sdk';
import { mayManage, useRole, userIdOf, type Managed, type Role } from '../access';
import { session } from '../session';
import { Dialog, fieldOf, focusHeadingIfLost, PageHeading, Pager, Problem, Scroll, SecretOnce, useAction, useLoad, useSearch, useStepBack, useTitle } from '../ui';

export interface Secret {
  label: string;
  value: string;
}
export interface RowTools {
  /** Runs a row action through the page: its error is shown, and the list is reloaded either way. */
  run: (f: () => Promise<unknown>) => void;
  showSecret: (s: Secret) => void;
}
/** What one kind of resource looks like in the console; ResourcePage does the rest. */
export interface Kind<T extends { id: string }> {
  title: string;
  /** The plural in a sentence ("No API keys yet."); the title in lower case if not given. */
  plural?: string;
  singular: string;
  /** Which permission changing it takes (access.ts): the console offers New, Edit, Delete and row actions only with it. */
  manages: Managed;
  /** Whether this row may be removed, beyond `manages` (a key: its owner, or an owner or admin). */
  removable?: (item: T, role: Role | undefined, me: string | undefined) => boolean;
  intro?: ComponentChildren;
  /**
   * A metadata filter beside the name (devices, channels): both in a form sent with Filter. Without
   * it the name alone is a search sent as typing pauses (apps, keys), as on the members page.
   */
  metadata?: boolean;
  /** `q.sort` is one of the columns' `sort` keys (last_seen only where a column offers it: devices). */
  list: (org: string, q: DeviceListQuery) => Promise<Page<T>>;
  /** `sort`: the list's sort this column's header offers (the API's `sort`), asc then desc then back to creation order. */
  columns: { label: string; cell: (t: T, org: string) => ComponentChildren; sort?: SortKey }[];
  /** The form's inputs; `item` is set when editing. */
  fields: (item?: T) => ComponentChildren;
  create: (org: string, f: FormData) => Promise<Secret | void>;
  update?: (org: string, id: string, f: FormData) => Promise<unknown>;
  remove: (org: string, id: string) => Promise<unknown>;
  removeVerb?: string;
  /** Row actions that change something: offered with `manages`. */
  actions?: (org: string, item: T, tools: RowTools) => ComponentChildren;
  /** Row links everyone who sees the row may follow (a channel's live and history views). */
  links?: (org: string, item: T) => ComponentChildren;
}

const LIMIT = 20;

type SortKey = NonNullable<DeviceListQuery['sort']>;
type Sorting = { sort: SortKey; order: 'asc' | 'desc' };
const CREATION: Sorting = { sort: 'created', order: 'asc' };
/** A header's next sort: its key ascending, then descending, then the list's creation order again. */
const nextSorting = (s: Sorting, key: SortKey): Sorting => (s.sort !== key ? { sort: key, order: 'asc' } : s.order === 'asc' ? { sort: key, order: 'desc' } : CREATION);

/** List with filters and paging (both answered by the API), create and edit in a dialog, delete with confirmation, secrets shown once. */
export function ResourcePage<T extends { id: string; name: string }>({ org, kind }: { org: string; kind: Kind<T> }) {
  const [filtered, setFiltered] = useState<ListQuery>({ offset: 0, limit: LIMIT });
  const search = useSearch(LIMIT);
  const [sorting, setSorting] = useState<Sorting>(CREATION);
  const query = { ...(kind.metadata ? filtered : { name: search.query.search || undefined, offset: search.query.offset, limit: search.query.limit }), ...sorting };
  const setOffset = kind.metadata ? (offset: number) => setFiltered((q) => ({ ...q, offset })) : search.setOffset;
  const sortBy = (key: SortKey) => {
    setSorting((s) => nextSorting(s, key));
    setOffset(0);
  };
  const list = useLoad(() => kind.list(org, query), [org, JSON.stringify(query)]);
  const [editing, setEditing] = useState<T | 'new' | null>(null);
  const [secret, setSecret] = useState<Secret | null>(null);
  const action = useAction();
  const rowAction = useAction();
  // What the last delete (or revoke) did, said in a status line: the row and its button are gone. The
  // next action (another delete, a create, an edit, a rotation) clears it: it would be old news.
  const [removed, setRemoved] = useState('');
  const runRow = (f: () => Promise<unknown>) => {
    setRemoved('');
    void rowAction.run(f).then(list.reload);
  };
  const tools: RowTools = { run: runRow, showSecret: setSecret };
  const shown = list.data?.items ?? [];
  const role = useRole();
  const manage = mayManage(role, kind.manages);
  const me = userIdOf(session.get()?.access);

  const stepping = useStepBack(list.data, setOffset);

  const save = (e: SubmitEvent) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget as HTMLFormElement);
    const target = editing;
    setRemoved('');
    void action.run(async () => {
      if (target === 'new') {
        const s = await kind.create(org, f);
        if (s) setSecret(s);
      } else if (target && kind.update) await kind.update(org, target.id, f);
      setEditing(null);
      list.reload();
    });
  };
  const remove = (item: T) => {
    const verb = kind.removeVerb ?? 'Delete';
    // The Delete (or Revoke) button used: focused at the click, and again once confirm() has closed.
    const trigger = document.activeElement;
    if (!confirm(`${verb} ${kind.singular} “${item.name}”?`)) return;
    setRemoved('');
    void rowAction.run(() => kind.remove(org, item.id)).then((ok) => {
      list.reload();
      if (!ok) return;
      setRemoved(`${verb}d ${kind.singular} “${item.name}”.`);
      // The button that had focus goes with its row (or, revoked, with its action): focus goes to the
      // page's heading, not to the top of the document — unless the user has moved it meanwhile (typed
      // into the filter while the API answered): that stays.
      focusHeadingIfLost(trigger);
    });
  };
  useTitle(kind.title);

  // A refused create or edit that names a field (the API problem's `errors`, or metadata that is not
  // JSON): that field is marked invalid, described by the problem and given focus, as on the settings form.
  const form = useRef<HTMLFormElement>(null);
  const problemId = useId();
  useEffect(() => {
    const f = form.current;
    if (!f) return;
    for (const el of f.querySelectorAll('[aria-invalid]')) {
      el.removeAttribute('aria-invalid');
      el.removeAttribute('aria-describedby');
    }
    const name = fieldOf(action.error);
    const el = name ? f.elements.namedItem(name) : null;
    if (!(el instanceof HTMLInputElement || el instanceof HTMLTextAreaElement || el instanceof HTMLSelectElement)) return;
    el.setAttribute('aria-invalid', 'true');
    el.setAttribute('aria-describedby', problemId);
    el.focus();
  }, [action.error]);

  return (
    <section aria-labelledby="page-title">
      <div class="row heading">
        <PageHeading>{kind.title}</PageHeading>
        {manage && (
          <button
            type="button"
            onClick={() => {
              action.clear();
              setEditing('new');
            }}
          >
            New {kind.singular}
          </button>
        )}
      </div>
      {kind.intro}
      {secret && <SecretOnce label={secret.label} value={secret.value} onDone={() => setSecret(null)} />}
      {!kind.metadata && (
        <label class="filters">
          Filter by name
          <input type="search" value={search.text} onInput={(e) => search.setText(e.currentTarget.value)} />
        </label>
      )}
      {kind.metadata && (
        <form
          class="row filters"
          role="search"
          onSubmit={(e) => {
            e.preventDefault();
            const f = new FormData(e.currentTarget);
            setFiltered({ offset: 0, limit: LIMIT, name: String(f.get('name') ?? '') || undefined, metadata: String(f.get('metadata') ?? '') || undefined });
          }}
        >
          <label>
            Name contains
            <input name="name" type="search" />
          </label>
          <label>
            Metadata contains (JSON)
            <input name="metadata" placeholder='{"room":"lab"}' />
          </label>
          <button type="submit">Filter</button>
        </form>
      )}
      <p role="status" class="muted">
        {removed}
      </p>
      <Problem error={rowAction.error} />
      <Problem error={list.error} />
      {list.data && (
        <>
          <Scroll label={`${kind.title} table`}>
            <table aria-busy={list.loading}>
              <thead>
                <tr>
                  {kind.columns.map((c) => {
                    const by = c.sort !== undefined && sorting.sort === c.sort ? sorting.order : undefined;
                    return (
                      <th scope="col" key={c.label} aria-sort={by === 'asc' ? 'ascending' : by === 'desc' ? 'descending' : undefined}>
                        {c.sort === undefined ? (
                          c.label
                        ) : (
                          <button type="button" class="sort" onClick={() => sortBy(c.sort!)} title={`Sort by ${c.label.toLowerCase()}${by === 'asc' ? ', descending' : by === 'desc' ? ': back to creation order' : ''}`}>
                            {c.label}
                            <span aria-hidden="true">{by === 'asc' ? ' ▲' : by === 'desc' ? ' ▼' : ''}</span>
                          </button>
                        )}
                      </th>
                    );
                  })}
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {shown.map((item) => (
                  <tr key={item.id}>
                    {kind.columns.map((c) => (
                      <td key={c.label}>{c.cell(item, org)}</td>
                    ))}
                    <td class="actions">
                      {kind.links?.(org, item)}
                      {manage && kind.actions?.(org, item, tools)}
                      {manage && kind.update && (
                        <button
                          type="button"
                          class="quiet"
                          aria-label={`Edit ${item.name}`}
                          onClick={() => {
                            action.clear();
                            setEditing(item);
                          }}
                        >
                          Edit
                        </button>
                      )}
                      {manage && (kind.removable?.(item, role, me) ?? true) && (
                        <button type="button" class="quiet danger" aria-label={`${kind.removeVerb ?? 'Delete'} ${item.name}`} onClick={() => remove(item)}>
                          {kind.removeVerb ?? 'Delete'}
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
                {shown.length === 0 && !stepping && (
                  <tr>
                    <td colSpan={kind.columns.length + 1} class="muted">
                      No {kind.plural ?? kind.title.toLowerCase()} {query.name || query.metadata ? 'match the filter' : 'yet'}.
                    </td>
                  </tr>
                )}
              </tbody>
            </table>
          </Scroll>
          {!stepping && <Pager total={list.data.total} offset={list.data.offset} limit={list.data.limit} onOffset={setOffset} />}
        </>
      )}
      <Dialog title={editing === 'new' ? `New ${kind.singular}` : `Edit ${kind.singular}`} open={editing !== null} onClose={() => setEditing(null)}>
        <form onSubmit={save} ref={form}>
          {kind.fields(editing === 'new' || editing === null ? undefined : editing)}
          <Problem error={action.error} id={problemId} />
          <div class="row">
            <button type="submit" disabled={action.busy}>
              {editing === 'new' ? 'Create' : 'Save'}
            </button>
            <button type="button" class="quiet" onClick={() => setEditing(null)}>
              Cancel
            </button>
          </div>
        </form>
      </Dialog>
    </section>
  );
}
