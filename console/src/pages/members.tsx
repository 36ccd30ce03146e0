import type { Role } from '../../../sdk';
import { useState } from 'preact/hooks';
import { navigate } from '../router';
import { api, session } from '../session';
import { focusHeadingIfLost, PageHeading, Pager, Problem, Scroll, useAction, useLoad, useSearch, useStepBack, useTitle, when } from '../ui';
import { grantableRoles, mayChangeMember, mayManage, useRole, userIdOf } from '../access';
import { orgsChanged } from './shell';

/** A controlled select (Preact sets `value`, never `defaultValue`, on a select: the first option would win). */
function RoleSelect({ value, roles, label, onChange }: { value: Role; roles: Role[]; label: string; onChange: (r: Role) => void }) {
  // aria-label: a label wrapping a select would also be named by its selected option.
  return (
    <select name="role" aria-label={label} value={value} onChange={(e) => onChange(e.currentTarget.value as Role)}>
      {roles.map((r) => (
        <option key={r}>{r}</option>
      ))}
    </select>
  );
}

const LIMIT = 20;

/** Org members: add a registered user by email with a role, change roles, remove; found by email (the API filters), paged. */
export function MembersPage({ org }: { org: string }) {
  const members = api.org(org).members;
  useTitle('Members');
  const search = useSearch(LIMIT);
  const { query } = search;
  const list = useLoad(() => members.list({ email: query.search || undefined, offset: query.offset, limit: query.limit }), [org, query]);
  const stepping = useStepBack(list.data, search.setOffset);
  const add = useAction();
  const row = useAction();
  // By id: the email as typed at login may differ in case from the stored one.
  const me = userIdOf(session.get()?.access);
  const role = useRole();
  // Owners and admins manage members (only owners touch the owner role); anyone may leave.
  const manage = mayManage(role, 'members');
  const roles = grantableRoles(role);
  const [newRole, setNewRole] = useState<Role>('member');
  const [removed, setRemoved] = useState('');
  // A membership changed: the list, and the org list too (it carries the user's own role, or the org is gone for them).
  const changed = () => {
    list.reload();
    orgsChanged();
  };
  // Another action (a role changed, a member added) clears the last removal's status: it would be old news.
  const rowRun = (f: () => Promise<unknown>) => {
    setRemoved('');
    add.clear();
    void row.run(f).then(changed);
  };
  return (
    <section aria-labelledby="page-title">
      <PageHeading>Members</PageHeading>
      {manage && (
        <form
          class="row"
          onSubmit={(e) => {
            e.preventDefault();
            const email = e.currentTarget.elements.namedItem('email') as HTMLInputElement;
            row.clear();
            setRemoved('');
            void add.run(async () => {
              await members.add({ email: email.value, role: newRole });
              email.value = '';
              changed();
            });
          }}
        >
          <label>
            Email of a registered user
            <input name="email" type="email" required />
          </label>
          <label>
            Role
            <RoleSelect label="Role" roles={roles} value={newRole} onChange={setNewRole} />
          </label>
          <button type="submit" disabled={add.busy}>
            Add member
          </button>
        </form>
      )}
      <Problem error={add.error} />
      <p role="status" class="muted">
        {removed}
      </p>
      <Problem error={row.error} />
      <Problem error={list.error} />
      <label class="filters">
        Filter by email
        <input type="search" value={search.text} onInput={(e) => search.setText(e.currentTarget.value)} />
      </label>
      {list.data && (
        <>
          <Scroll label="Members table">
            <table aria-busy={list.loading}>
              <thead>
                <tr>
                  <th scope="col">Email</th>
                  <th scope="col">Role</th>
                  <th scope="col">Since</th>
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.data.items.map((m) => {
                  const self = me !== undefined && m.user_id === me;
                  const may = mayChangeMember(role, m.role);
                  return (
                    <tr key={m.user_id}>
                      <td>{m.email}</td>
                      <td>{may ? <RoleSelect label={`Role of ${m.email}`} roles={roles} value={m.role} onChange={(r) => rowRun(() => members.setRole(m.user_id, r))} /> : m.role}</td>
                      <td>{when(m.created_at)}</td>
                      <td class="actions">
                        {(may || self) && (
                          <button
                            type="button"
                            class="quiet danger"
                            aria-label={`Remove ${m.email}`}
                            onClick={() => {
                              if (!confirm(`Remove ${self ? 'yourself' : m.email} from the org? ${self ? 'Your' : 'Their'} API keys in this org are revoked.`)) return;
                              if (!self) {
                                const trigger = document.activeElement;
                                add.clear();
                                setRemoved('');
                                // Its row goes, and the button with it: focus goes to the heading (unless moved meanwhile), a status says who went.
                                return void row.run(() => members.remove(m.user_id)).then((ok) => {
                                  changed();
                                  if (!ok) return;
                                  setRemoved(`Removed ${m.email}.`);
                                  focusHeadingIfLost(trigger);
                                });
                              }
                              // Left the org: nothing here is ours to see any more; home picks another org.
                              void row.run(() => members.remove(m.user_id)).then((ok) => {
                                if (!ok) return changed();
                                orgsChanged();
                                navigate('/');
                              });
                            }}
                          >
                            Remove
                          </button>
                        )}
                      </td>
                    </tr>
                  );
                })}
                {list.data.items.length === 0 && !stepping && (
                  <tr>
                    <td colSpan={4} class="muted">
                      No members match the filter.
                    </td>
                  </tr>
                )}
              </tbody>
            </table>
          </Scroll>
          {!stepping && <Pager total={list.data.total} offset={list.data.offset} limit={list.data.limit} onOffset={search.setOffset} />}
        </>
      )}
    </section>
  );
}
