import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Org } from '../../../sdk';
import { Link, navigate } from '../router';
import { RoleContext, type Role } from '../access';
import { api, logOut, session } from '../session';
import { allPages, Dialog, isNotFound, PageHeading, Problem, useAction, useLoad, useTitle } from '../ui';

const SECTIONS = ['devices', 'channels', 'connections', 'apps', 'keys', 'members'] as const;
const LAST_ORG = 'edgeflux.org';

// Creating an org, or a change of membership (one's own role, leaving), reloads the org list everywhere:
// the switcher and the role that decides what pages offer.
let orgsVersion = 0;
const ORGS_EVENT = 'edgeflux:orgs';
export const orgsChanged = (): void => {
  orgsVersion++;
  dispatchEvent(new Event(ORGS_EVENT));
};
function useOrgsVersion(): number {
  const [v, setV] = useState(orgsVersion);
  useEffect(() => {
    const on = () => setV(orgsVersion);
    addEventListener(ORGS_EVENT, on);
    return () => removeEventListener(ORGS_EVENT, on);
  }, []);
  return v;
}

const orgLabel = (o: Org) => `${o.name}${o.role ? ` (${o.role})` : ''}`;

function NewOrgForm({ onCreated }: { onCreated: (o: Org) => void }) {
  const action = useAction();
  return (
    <form
      class="row"
      onSubmit={(e) => {
        e.preventDefault();
        const form = e.currentTarget;
        const name = String(new FormData(form).get('name'));
        void action.run(async () => {
          const org = await api.orgs.create(name);
          form.reset();
          orgsChanged();
          onCreated(org);
        });
      }}
    >
      <label>
        Organization name
        <input name="name" required maxLength={200} placeholder="acme" />
      </label>
      <button type="submit" disabled={action.busy}>
        Create organization
      </button>
      <Problem error={action.error} />
    </form>
  );
}

/** Header (org switcher, sections, log out) around every signed-in page. */
export function Shell({ org, path, children }: { org: string | undefined; path: string; children: ComponentChildren }) {
  const v = useOrgsVersion();
  // The switcher offers every org of the user, however many (a page of 100 at a time).
  const orgs = useLoad(() => allPages((q) => api.orgs.list(q)), [v]);
  // The org shown is asked for by id: that one call gives the user's role there (a 404: not one of theirs),
  // whatever the list holds or how far it has loaded.
  const shown = useLoad(async () => (org ? api.orgs.get(org) : undefined), [org, v]);
  const [adding, setAdding] = useState(false);
  // The page of the org just created in the dialog, gone to once the dialog has closed (its `close`
  // event): closing gives focus back to New organization, and that `focusin`, after a navigation, would
  // count as the user moving focus and keep the new page's heading from taking it (router.tsx).
  const goTo = useRef<string | null>(null);
  const dialogOpen = useRef(adding);
  dialogOpen.current = adding;
  useEffect(() => {
    if (org) localStorage.setItem(LAST_ORG, org);
  }, [org]);
  const section = path.split('/')[3];
  const listed = orgs.data?.find((o) => o.id === org);
  // Until it answers for this org, the list's entry; after a 404, nothing. Another failure (a policy that
  // denies reading the org) leaves the list's entry, as it is the membership that carries the role.
  const current = shown.error ? (isNotFound(shown.error) ? undefined : listed) : shown.data?.id === org ? shown.data : listed;
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <Link href="/" class="brand">
          Edgeflux
        </Link>
        {orgs.data && orgs.data.length > 0 && (
          <select aria-label="Organization" value={org ?? ''} onChange={(e) => navigate(`/o/${encodeURIComponent(e.currentTarget.value)}/${section ?? 'devices'}`)}>
            {/* An org not in the list (a link to one the user is not in): the picker says so rather than showing blank. */}
            {!listed && <option value={org ?? ''}>{!org ? 'Choose an organization' : current ? orgLabel(current) : shown.loading ? 'Loading…' : 'Not one of your organizations'}</option>}
            {orgs.data.map((o) => (
              <option value={o.id} key={o.id}>
                {orgLabel(o)}
              </option>
            ))}
          </select>
        )}
        {orgs.data && orgs.data.length > 0 && (
          <button type="button" class="quiet" onClick={() => setAdding(true)}>
            New organization
          </button>
        )}
        <span class="grow" />
        <span class="muted">{session.get()?.email}</span>
        <button type="button" class="quiet" onClick={() => void logOut()}>
          Log out
        </button>
      </header>
      {org && (
        <nav class="sections" aria-label="Sections">
          {SECTIONS.map((s) => (
            <Link key={s} href={`/o/${encodeURIComponent(org)}/${s}`} section={section === s}>
              {s[0]!.toUpperCase() + s.slice(1)}
            </Link>
          ))}
        </nav>
      )}
      <Dialog
        title="New organization"
        open={adding}
        onClose={() => {
          setAdding(false);
          const to = goTo.current;
          goTo.current = null;
          if (to) navigate(to);
        }}
      >
        <NewOrgForm
          onCreated={(o) => {
            const to = `/o/${encodeURIComponent(o.id)}/devices`;
            // Closed already (Escape while the API answered): no close event is to come.
            if (!dialogOpen.current) return navigate(to);
            goTo.current = to;
            setAdding(false);
          }}
        />
      </Dialog>
      <main id="main" tabIndex={-1}>
        <Problem error={orgs.error} />
        <RoleContext.Provider value={current?.role as Role | undefined}>{children}</RoleContext.Provider>
      </main>
    </>
  );
}

/** `/`: the last org used if the user is still in it (asked for by id), else their first, or a form to create one. */
export function HomePage() {
  const v = useOrgsVersion();
  const pick = useLoad(async () => {
    const last = localStorage.getItem(LAST_ORG);
    const lastOrg = last ? await api.orgs.get(last).catch(() => undefined) : undefined;
    return lastOrg ?? (await api.orgs.list({ limit: 1 })).items[0] ?? null;
  }, [v]);
  const to = pick.data;
  useTitle('Home');
  useEffect(() => {
    if (to) navigate(`/o/${encodeURIComponent(to.id)}/devices`, true);
  }, [to]);
  if (pick.error) return <Problem error={pick.error} />;
  if (to !== null) return <p aria-busy="true">Loading…</p>;
  return (
    <section aria-labelledby="page-title">
      <PageHeading>Welcome</PageHeading>
      <p>Everything in Edgeflux belongs to an organization. Create one to start; you become its owner.</p>
      <NewOrgForm onCreated={(o) => navigate(`/o/${encodeURIComponent(o.id)}/devices`)} />
    </section>
  );
}
