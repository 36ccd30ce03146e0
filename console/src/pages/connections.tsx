import { useState } from 'preact/hooks';
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
  const run = (f: () => Promise<unknown>) => void act.run(async () => (await f(), connected.reload()));

  const manage = mayManage(useRole(), 'connections');
  if (channels.data && channels.data.items.length === 0) return <p>Create a channel first, then connect devices to it here.</p>;
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Connections</h1>
      <Problem error={channels.error ?? devices.error ?? connected.error ?? act.error} />
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
        <table>
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
              .map((d) => (
                <tr key={d.id}>
                  <td>{d.name}</td>
                  {TYPES.map((t) => (
                    <td key={t}>
                      <input
                        type="checkbox"
                        aria-label={`${d.name} may ${t}`}
                        checked={d.types.includes(t)}
                        disabled={!manage}
                        onChange={(e) => {
                          const types = e.currentTarget.checked ? [...d.types, t] : d.types.filter((x) => x !== t);
                          if (types.length) run(() => scope.connections.put(chosen, d.id, types));
                          else run(() => scope.connections.remove(chosen, d.id));
                        }}
                      />
                    </td>
                  ))}
                  <td class="actions">
                    {manage && (
                      <button type="button" class="quiet danger" aria-label={`Disconnect ${d.name}`} onClick={() => run(() => scope.connections.remove(chosen, d.id))}>
                        Disconnect
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            {connected.data.items.length === 0 && (
              <tr>
                <td colSpan={4} class="muted">
                  No devices connected to this channel yet.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      )}
    </section>
  );
}
