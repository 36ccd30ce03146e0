import { useEffect, useRef, useState } from 'preact/hooks';
import type { ConnectionType } from '../../../sdk';
import { api } from '../session';
import { Problem, useAction, useLoad } from '../ui';
import { mayManage, useRole } from '../access';

const TYPES: ConnectionType[] = ['publish', 'subscribe'];
const typesOf = (f: FormData) => TYPES.filter((t) => f.get(t) === 'on');

/** Which devices may publish/subscribe on a channel: connect, change types, disconnect. */
export function ConnectionsPage({ org }: { org: string }) {
  const scope = api.org(org);
  const channels = useLoad(() => scope.channels.list({ limit: 100 }), [org]);
  const devices = useLoad(() => scope.devices.list({ limit: 100 }), [org]);
  const [channel, setChannel] = useState('');
  const [filter, setFilter] = useState('');
  const chosen = channel || channels.data?.items[0]?.id || '';
  const connected = useLoad(async () => (chosen ? scope.channels.devices(chosen, { limit: 100 }) : undefined), [org, chosen]);
  const act = useAction();
  // One change at a time, each from the list as it is after the last one: from the click until the
  // reloaded list is in (a failed change reloads too, undoing the tick) the boxes refuse clicks. They
  // are aria-disabled, not disabled, so the box just ticked keeps keyboard focus.
  // `inFlight` refuses a second click before the page has even re-rendered after the first.
  const inFlight = useRef(false);
  const run = (f: () => Promise<unknown>) => {
    inFlight.current = true;
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
    if (inFlight.current || !confirm(`Disconnect ${name} from this channel? It may no longer publish or subscribe here.`)) return false;
    run(() => scope.connections.remove(chosen, id));
    return true;
  };

  const manage = mayManage(useRole(), 'connections');
  if (channels.data && channels.data.items.length === 0) return <p>Create a channel first, then connect devices to it here.</p>;
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Connections</h1>
      <Problem error={act.error} />
      <Problem error={channels.error ?? devices.error ?? connected.error} />
      <div class="row">
        <label>
          Channel
          <select value={chosen} onChange={(e) => setChannel(e.currentTarget.value)}>
            {channels.data?.items.map((c) => (
              <option key={c.id} value={c.id}>
                {c.name}
              </option>
            ))}
          </select>
        </label>
      </div>
      {manage && (
        <form
          class="row"
          onSubmit={(e) => {
            e.preventDefault();
            const f = new FormData(e.currentTarget);
            const ids = f.getAll('device').map(String);
            if (ids.length) run(() => scope.connections.connect({ channel_ids: [chosen], device_ids: ids, types: typesOf(f) }));
          }}
        >
          <label>
            Devices to connect
            <select name="device" multiple size={Math.min(6, Math.max(2, devices.data?.items.length ?? 2))} required>
              {devices.data?.items.map((d) => (
                <option key={d.id} value={d.id}>
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
        </form>
      )}
      <label>
        Filter connected devices by name
        <input type="search" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
      </label>
      {connected.data && (
        <div class="scroll">
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
              {connected.data.items
                .filter((d) => d.name.toLowerCase().includes(filter.toLowerCase()))
                .map((d) => {
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
                                run(() => scope.connections.put(chosen, d.id, next));
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
              {connected.data.items.length === 0 && (
                <tr>
                  <td colSpan={4} class="muted">
                    No devices connected to this channel yet.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
