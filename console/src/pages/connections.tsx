import { useEffect, useRef, useState } from 'preact/hooks';
import type { ConnectionType, Page } from '../../../sdk';
import { api } from '../session';
import { focusHeadingIfLost, MAX_PAGE, PageHeading, Pager, Problem, useAction, useLoad, Scroll, useSearch, useStepBack, useTitle } from '../ui';
import { mayManage, useRole } from '../access';

const TYPES: ConnectionType[] = ['publish', 'subscribe'];
const typesOf = (f: FormData) => TYPES.filter((t) => f.get(t) === 'on');
const LIMIT = 20;

interface Named {
  id: string;
  name: string;
}

/** What a picker lists of its matches: the API's first 100; past that, a search finds the rest. */
function Listed({ page, what, search }: { page: Page<Named> | undefined; what: string; search: string }) {
  const text = !page ? '' : page.total > page.items.length ? `Listing ${page.items.length} of ${page.total} ${what}: search by name to find the others.` : page.total === 0 && search ? `No ${what} match “${search}”.` : '';
  return (
    <p class="muted" role="status">
      {text}
    </p>
  );
}

const names = (list: string[]) => (list.length > 3 ? `${list.slice(0, 3).join(', ')} and ${list.length - 3} more` : list.join(', '));

/**
 * Which devices may publish/subscribe on a channel: connect, change types, disconnect. The channel
 * and the devices to connect are found by a name search the API answers, so any of an org's
 * channels and devices can be reached; the connected devices are paged, and filtered by the API.
 */
export function ConnectionsPage({ org }: { org: string }) {
  const scope = api.org(org);
  useTitle('Connections');
  const channelSearch = useSearch(MAX_PAGE);
  const channels = useLoad(() => scope.channels.list({ name: channelSearch.query.search || undefined, limit: MAX_PAGE }), [org, channelSearch.query.search]);
  const deviceSearch = useSearch(MAX_PAGE);
  const devices = useLoad(() => scope.devices.list({ name: deviceSearch.query.search || undefined, limit: MAX_PAGE }), [org, deviceSearch.query.search]);
  // The devices ticked to connect, kept across searches (id → name).
  const [picked, setPicked] = useState<ReadonlyMap<string, string>>(new Map());
  const [chosen, setChosen] = useState<Named | null>(null);
  // The first channel, until another is chosen.
  useEffect(() => {
    const first = channels.data?.items[0];
    if (!chosen && first) setChosen(first);
  }, [channels.data]);
  const listed = useSearch(LIMIT);
  const { query } = listed;
  const connected = useLoad(async () => (chosen ? scope.channels.devices(chosen.id, { name: query.search || undefined, offset: query.offset, limit: query.limit }) : undefined), [org, chosen?.id, query]);
  const stepping = useStepBack(connected.data, listed.setOffset);
  const act = useAction();
  const [done, setDone] = useState('');
  // One change at a time, each from the list as it is after the last one: from the click until the
  // reloaded list is in (a failed change reloads too, undoing the tick) the boxes refuse clicks. They
  // are aria-disabled, not disabled, so the box just ticked keeps keyboard focus.
  // `inFlight` refuses a second click before the page has even re-rendered after the first.
  const inFlight = useRef(false);
  const run = (f: () => Promise<unknown>) => {
    inFlight.current = true;
    setDone('');
    void act.run(f).then(connected.reload);
  };
  const settling = act.busy || connected.loading;
  // The types just asked for, shown until the reloaded list has them (or, if refused, has the old ones).
  const [pending, setPending] = useState<{ device: string; types: ConnectionType[] } | null>(null);
  useEffect(() => {
    if (connected.loading) return;
    inFlight.current = false;
    setPending(null);
  }, [connected.loading, connected.data]);
  const disconnect = (name: string, id: string): boolean => {
    if (!chosen || inFlight.current || !confirm(`Disconnect ${name} from this channel? It may no longer publish or subscribe here.`)) return false;
    const channel = chosen.id;
    // The button or box used (focused at the click; confirm() gives focus back to it).
    const trigger = document.activeElement;
    inFlight.current = true;
    setDone('');
    void act.run(() => scope.connections.remove(channel, id)).then((ok) => {
      connected.reload();
      if (!ok) return;
      // Its row goes, and the button or box that had focus with it: focus goes to the heading, unless the
      // user has moved it elsewhere while waiting.
      setDone(`Disconnected ${name} from ${chosen.name}.`);
      focusHeadingIfLost(trigger);
    });
    return true;
  };

  const manage = mayManage(useRole(), 'connections');
  if (channels.data && channels.data.total === 0 && !channelSearch.query.search && !channels.loading) 
    return (
      // The same heading as the page with channels, so the one focused as the page came stays (and focused).
      <section aria-labelledby="page-title">
        <PageHeading>Connections</PageHeading>
        <p>Create a channel first, then connect devices to it here.</p>
      </section>
    );
  // The chosen channel stays in the picker while a search lists others.
  const channelOptions = chosen && !channels.data?.items.some((c) => c.id === chosen.id) ? [chosen, ...(channels.data?.items ?? [])] : (channels.data?.items ?? []);
  const deviceItems = devices.data?.items ?? [];
  const filtered = query.search !== '';
  return (
    <section aria-labelledby="page-title">
      <PageHeading>Connections</PageHeading>
      <Problem error={act.error} />
      <Problem error={channels.error ?? devices.error ?? connected.error} />
      <div class="row">
        <label>
          Search channels by name
          <input type="search" value={channelSearch.text} onInput={(e) => channelSearch.setText(e.currentTarget.value)} />
        </label>
        <label>
          Channel
          {/* aria-label: a label wrapping a select would also be named by its selected options. */}
          <select
            aria-label="Channel"
            value={chosen?.id ?? ''}
            onChange={(e) => {
              const c = channelOptions.find((o) => o.id === e.currentTarget.value);
              if (!c) return;
              setChosen({ id: c.id, name: c.name });
              listed.setOffset(0);
              setDone('');
            }}
          >
            {channelOptions.map((c) => (
              <option key={c.id} value={c.id}>
                {c.name}
              </option>
            ))}
          </select>
        </label>
      </div>
      <Listed page={channels.data} what="channels" search={channelSearch.query.search} />
      {manage && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            const f = new FormData(e.currentTarget);
            const channel = chosen;
            const ids = [...picked.keys()];
            const what = names([...picked.values()]);
            if (!channel || !ids.length) return;
            run(async () => {
              await scope.connections.connect({ channel_ids: [channel.id], device_ids: ids, types: typesOf(f) });
              setPicked(new Map());
              setDone(`Connected ${what} to ${channel.name}.`);
            });
          }}
        >
          <div class="row">
            <label>
              Search devices by name
              <input type="search" value={deviceSearch.text} onInput={(e) => deviceSearch.setText(e.currentTarget.value)} />
            </label>
            <label>
              Devices to connect
              <select
                aria-label="Devices to connect"
                name="device"
                multiple
                size={Math.min(6, Math.max(2, deviceItems.length))}
                // Ticked ones found by an earlier search count too: the browser asks only when none is.
                required={picked.size === 0}
                onChange={(e) => {
                  const next = new Map(picked);
                  for (const o of Array.from(e.currentTarget.options)) {
                    if (o.selected) next.set(o.value, o.text);
                    else next.delete(o.value);
                  }
                  setPicked(next);
                }}
              >
                {deviceItems.map((d) => (
                  <option key={d.id} value={d.id} selected={picked.has(d.id)}>
                    {d.name}
                  </option>
                ))}
              </select>
            </label>
            <fieldset>
              <legend>May</legend>
              {TYPES.map((t) => (
                <label key={t} class="check">
                  <input type="checkbox" name={t} defaultChecked /> {t}
                </label>
              ))}
            </fieldset>
            <button type="submit" disabled={act.busy || !chosen}>
              Connect
            </button>
          </div>
          <Listed page={devices.data} what="devices" search={deviceSearch.query.search} />
          {picked.size > 0 && (
            <p class="row tight">
              <span>
                To connect: {names([...picked.values()])}
              </span>
              <button type="button" class="quiet" onClick={() => setPicked(new Map())}>
                Clear the choice
              </button>
            </p>
          )}
        </form>
      )}
      <p role="status">{done}</p>
      <label class="filters">
        Filter connected devices by name
        <input type="search" value={listed.text} onInput={(e) => listed.setText(e.currentTarget.value)} />
      </label>
      {connected.data && (
        <>
          <Scroll label="Connected devices">
            <table aria-busy={settling ? 'true' : 'false'}>
              <thead>
                <tr>
                  <th scope="col">Device</th>
                  <th scope="col">Publish</th>
                  <th scope="col">Subscribe</th>
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {connected.data.items.map((d) => {
                  const types = pending?.device === d.id ? pending.types : d.types;
                  return (
                    <tr key={d.id}>
                      <td>{d.name}</td>
                      {TYPES.map((t) => (
                        <td key={t}>
                          <input
                            type="checkbox"
                            aria-label={`${d.name} may ${t}`}
                            checked={types.includes(t)}
                            disabled={!manage}
                            aria-disabled={settling || undefined}
                            onClick={(e) => (settling || inFlight.current) && e.preventDefault()}
                            onChange={(e) => {
                              const box = e.currentTarget;
                              const next = TYPES.filter((x) => (x === t ? box.checked : types.includes(x)));
                              if (next.length) {
                                setPending({ device: d.id, types: next });
                                const channel = chosen!.id; // a row is of the chosen channel
                                run(() => scope.connections.put(channel, d.id, next));
                              } else if (!disconnect(d.name, d.id)) box.checked = true; // neither: that is a disconnect, asked like one
                            }}
                          />
                        </td>
                      ))}
                      <td class="actions">
                        {manage && (
                          <button type="button" class="quiet danger" aria-label={`Disconnect ${d.name}`} disabled={settling} onClick={() => disconnect(d.name, d.id)}>
                            Disconnect
                          </button>
                        )}
                      </td>
                    </tr>
                  );
                })}
                {connected.data.items.length === 0 && !stepping && (
                  <tr>
                    <td colSpan={4} class="muted">
                      {filtered ? 'No connected devices match the filter.' : 'No devices connected to this channel yet.'}
                    </td>
                  </tr>
                )}
              </tbody>
            </table>
          </Scroll>
          {!stepping && <Pager total={connected.data.total} offset={connected.data.offset} limit={connected.data.limit} onOffset={listed.setOffset} />}
        </>
      )}
    </section>
  );
}
