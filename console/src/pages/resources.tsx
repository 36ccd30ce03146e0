/** Devices, channels, apps and API keys: each is a Kind rendered by ResourcePage. */
import { useState } from 'preact/hooks';
import type { ApiKey, App, Channel, Device, DeviceListQuery, ListQuery } from '../../../sdk';
import { Link } from '../router';
import { api } from '../session';
import { Dialog, parseObject, splitList, when } from '../ui';
import { ResourcePage, type Kind, type RowTools } from './resource';
import { mayRevoke } from '../access';

/** The query of a list whose columns offer only name and creation sorts (last_seen is the devices'). */
const byName = ({ sort, ...q }: DeviceListQuery): ListQuery => ({ ...q, sort: sort === 'last_seen' ? undefined : sort });

const str = (f: FormData, k: string) => String(f.get(k) ?? '').trim();
const json = (v: unknown) => (v && Object.keys(v).length ? JSON.stringify(v) : '');
const orgPath = (org: string) => `/o/${encodeURIComponent(org)}`;

function NameAndMetadata({ item }: { item?: { name: string; metadata: Record<string, unknown> } }) {
  return (
    <>
      <label>
        Name
        <input name="name" required maxLength={200} defaultValue={item?.name} />
      </label>
      <label>
        Metadata (JSON object)
        <textarea name="metadata" rows={3} placeholder='{"room":"lab"}' defaultValue={item ? JSON.stringify(item.metadata, null, 2) : ''} />
      </label>
    </>
  );
}
/** Name and metadata from the form; an emptied metadata box clears it on edit ({}), and is left out on create. */
const named = (f: FormData, editing = false) => ({ name: str(f, 'name'), metadata: parseObject(str(f, 'metadata'), 'metadata') ?? (editing ? {} : undefined) });

function ScopeFields({ scopes }: { scopes?: string[] }) {
  return (
    <label>
      Scopes (space or comma separated, e.g. <code>devices:read messages:*</code>)
      <input name="scopes" required defaultValue={scopes?.join(' ')} />
    </label>
  );
}

const devices: Kind<Device> = {
  manages: 'devices',
  title: 'Devices',
  singular: 'device',
  metadata: true,
  list: (org, q) => api.org(org).devices.list(q),
  columns: [
    { label: 'Name', cell: (d) => d.name, sort: 'name' },
    { label: 'Id', cell: (d) => <code>{d.id}</code> },
    { label: 'Metadata', cell: (d) => <code>{json(d.metadata)}</code> },
    { label: 'Online', cell: (d) => (d.online ? 'online' : `offline${d.last_seen ? ` since ${when(d.last_seen)}` : ''}`), sort: 'last_seen' },
  ],
  fields: (d) => <NameAndMetadata item={d} />,
  create: async (org, f) => {
    const d = await api.org(org).devices.create(named(f));
    return { label: `Key of device ${d.name}`, value: d.key };
  },
  update: (org, id, f) => api.org(org).devices.update(id, named(f, true)),
  remove: (org, id) => api.org(org).devices.delete(id),
  actions: (org, d, t) => (
    <button
      type="button"
      class="quiet"
      aria-label={`Rotate key of ${d.name}`}
      onClick={() => {
        if (!confirm(`Rotate the key of “${d.name}”? The old key stops working at once.`)) return;
        t.run(async () => {
          const k = await api.org(org).devices.rotateKey(d.id);
          t.showSecret({ label: `New key of device ${d.name}`, value: k.key });
        });
      }}
    >
      Rotate key
    </button>
  ),
};

const channels: Kind<Channel> = {
  manages: 'channels',
  title: 'Channels',
  singular: 'channel',
  metadata: true,
  list: (org, q) => api.org(org).channels.list(byName(q)),
  columns: [
    { label: 'Name', cell: (c, org) => <Link href={`${orgPath(org)}/channels/${encodeURIComponent(c.id)}`}>{c.name}</Link>, sort: 'name' },
    { label: 'Id', cell: (c) => <code>{c.id}</code> },
    { label: 'Metadata', cell: (c) => <code>{json(c.metadata)}</code> },
    { label: 'Created', cell: (c) => when(c.created_at) },
  ],
  fields: (c) => <NameAndMetadata item={c} />,
  create: async (org, f) => void (await api.org(org).channels.create(named(f))),
  update: (org, id, f) => api.org(org).channels.update(id, named(f, true)),
  remove: (org, id) => api.org(org).channels.delete(id),
  links: (org, c) => (
    <>
      <Link href={`${orgPath(org)}/channels/${encodeURIComponent(c.id)}`} aria-label={`Live view of ${c.name}`}>
        Live
      </Link>
      <Link href={`${orgPath(org)}/channels/${encodeURIComponent(c.id)}/history`} aria-label={`History of ${c.name}`}>
        History
      </Link>
    </>
  ),
};

const apps: Kind<App> = {
  manages: 'apps',
  title: 'Apps',
  singular: 'app',
  intro: <p class="muted">Third-party applications authenticate with OAuth2 client credentials at <code>POST /oauth/token</code>.</p>,
  list: (org, q) => api.org(org).apps.list(byName(q)),
  columns: [
    { label: 'Name', cell: (a) => a.name, sort: 'name' },
    { label: 'Client id', cell: (a) => <code>{a.client_id}</code> },
    { label: 'Scopes', cell: (a) => a.scopes.join(' ') },
    { label: 'Created', cell: (a) => when(a.created_at) },
  ],
  fields: (a) => (
    <>
      <label>
        Name
        <input name="name" required maxLength={200} defaultValue={a?.name} />
      </label>
      <ScopeFields scopes={a?.scopes} />
    </>
  ),
  create: async (org, f) => {
    const a = await api.org(org).apps.create({ name: str(f, 'name'), scopes: splitList(str(f, 'scopes')) });
    return { label: `Client secret of app ${a.name} (client id ${a.client_id})`, value: a.client_secret };
  },
  update: (org, id, f) => api.org(org).apps.update(id, { name: str(f, 'name'), scopes: splitList(str(f, 'scopes')) }),
  remove: (org, id) => api.org(org).apps.delete(id),
  actions: (org, a, t) => <RotateSecret org={org} app={a} tools={t} />,
};

/**
 * "New secret", confirmed in a dialog that also offers what a leak calls for: revoking the keys the
 * app issued and ending its tokens at once (`revokeIssued`, docs/auth.md). Unticked, as before.
 */
function RotateSecret({ org, app: a, tools: t }: { org: string; app: App; tools: RowTools }) {
  const [open, setOpen] = useState(false);
  const rotate = (e: SubmitEvent) => {
    e.preventDefault();
    const revokeIssued = new FormData(e.currentTarget as HTMLFormElement).get('revokeIssued') === 'on';
    setOpen(false);
    t.run(async () => {
      const s = await api.org(org).apps.rotateSecret(a.id, revokeIssued ? { revokeIssued } : undefined);
      const revoked = s.revoked_keys === undefined ? '' : ` (${s.revoked_keys === 1 ? '1 API key' : `${s.revoked_keys} API keys`} revoked, its tokens ended)`;
      t.showSecret({ label: `New client secret of app ${a.name}${revoked}`, value: s.client_secret });
    });
  };
  return (
    <>
      <button type="button" class="quiet" aria-label={`New secret for ${a.name}`} onClick={() => setOpen(true)}>
        New secret
      </button>
      <Dialog title={`New secret for ${a.name}`} open={open} onClose={() => setOpen(false)}>
        <form onSubmit={rotate}>
          <p>The old secret stops working at once.</p>
          <label class="check">
            <input type="checkbox" name="revokeIssued" />
            Also revoke the API keys this app issued and end its access tokens now (after a leak)
          </label>
          <div class="row">
            <button type="submit">New secret</button>
            <button type="button" class="quiet" onClick={() => setOpen(false)}>
              Cancel
            </button>
          </div>
        </form>
      </Dialog>
    </>
  );
}

const keys: Kind<ApiKey> = {
  manages: 'keys',
  removable: (k, role, me) => mayRevoke(role, me, k),
  title: 'API keys',
  plural: 'API keys',
  singular: 'API key',
  intro: <p class="muted">Scoped, expiring JWTs for scripts and dashboards: <code>Authorization: Bearer &lt;key&gt;</code>.</p>,
  list: (org, q) => api.org(org).keys.list(byName(q)),
  columns: [
    { label: 'Name', cell: (k) => k.name, sort: 'name' },
    { label: 'Scopes', cell: (k) => k.scopes.join(' ') },
    { label: 'Expires', cell: (k) => (k.expires_at ? when(k.expires_at) : 'never') },
    { label: 'State', cell: (k) => (k.revoked_at ? `revoked ${when(k.revoked_at)}` : k.expires_at && k.expires_at < Date.now() ? 'expired' : 'active') },
  ],
  fields: () => (
    <>
      <label>
        Name
        <input name="name" required maxLength={200} />
      </label>
      <ScopeFields />
      <label>
        Expires in (days; empty = never)
        <input name="days" type="number" min={1} max={3650} />
      </label>
    </>
  ),
  create: async (org, f) => {
    const days = Number(str(f, 'days'));
    const k = await api.org(org).keys.issue({ name: str(f, 'name'), scopes: splitList(str(f, 'scopes')), expires_in: days ? days * 86_400 : undefined });
    return { label: `API key ${k.name}`, value: k.key };
  },
  remove: (org, id) => api.org(org).keys.revoke(id),
  removeVerb: 'Revoke',
};

export const DevicesPage = ({ org }: { org: string }) => <ResourcePage org={org} kind={devices} />;
export const ChannelsPage = ({ org }: { org: string }) => <ResourcePage org={org} kind={channels} />;
export const AppsPage = ({ org }: { org: string }) => <ResourcePage org={org} kind={apps} />;
export const KeysPage = ({ org }: { org: string }) => <ResourcePage org={org} kind={keys} />;
