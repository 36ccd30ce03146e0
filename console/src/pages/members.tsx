import type { Role } from '../../../sdk';
import { useState } from 'preact/hooks';
import { api, session } from '../session';
import { Problem, useAction, useLoad, when } from '../ui';
import { mayManage, useRole } from '../access';

const ROLES: Role[] = ['owner', 'admin', 'member', 'viewer'];

function RoleSelect({ value, label, onChange }: { value: Role; label: string; onChange?: (r: Role) => void }) {
  // aria-label: a label wrapping a select would also be named by its selected option.
  return (
    <select name="role" aria-label={label} value={onChange ? value : undefined} defaultValue={onChange ? undefined : value} onChange={onChange && ((e) => onChange(e.currentTarget.value as Role))}>
      {ROLES.map((r) => (
        <option key={r}>{r}</option>
      ))}
    </select>
  );
}

/** Org members: add a registered user by email with a role, change roles, remove. */
export function MembersPage({ org }: { org: string }) {
  const members = api.org(org).members;
  const list = useLoad(() => members.list({ limit: 100 }), [org]);
  const add = useAction();
  const row = useAction();
  const me = session.get()?.email;
  // Owners and admins manage members; anyone may leave (remove themselves).
  const manage = mayManage(useRole(), 'members');
  const [filter, setFilter] = useState('');
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title">Members</h1>
      {manage && (
        <form
          class="row"
          onSubmit={(e) => {
            e.preventDefault();
            const form = e.currentTarget;
            const f = new FormData(form);
            void add.run(async () => {
              await members.add({ email: String(f.get('email')), role: String(f.get('role')) as Role });
              form.reset();
              list.reload();
            });
          }}
        >
          <label>
            Email of a registered user
            <input name="email" type="email" required />
          </label>
          <label>
            Role
            <RoleSelect label="Role" value="member" />
          </label>
          <button type="submit" disabled={add.busy}>
            Add member
          </button>
        </form>
      )}
      <Problem error={add.error ?? row.error ?? list.error} />
      <label>
        Filter by email
        <input type="search" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
      </label>
      {list.data && (
        <table>
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
            {list.data.items.filter((m) => m.email.toLowerCase().includes(filter.toLowerCase())).map((m) => (
              <tr key={m.user_id}>
                <td>{m.email}</td>
                <td>{manage ? <RoleSelect label={`Role of ${m.email}`} value={m.role} onChange={(role) => void row.run(async () => (await members.setRole(m.user_id, role), list.reload()))} /> : m.role}</td>
                <td>{when(m.created_at)}</td>
                <td class="actions">
                  {(manage || m.email === me) && (
                    <button
                      type="button"
                      class="quiet danger"
                      aria-label={`Remove ${m.email}`}
                      onClick={() => confirm(`Remove ${m.email === me ? 'yourself' : m.email} from the org?`) && void row.run(async () => (await members.remove(m.user_id), list.reload()))}
                    >
                      Remove
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
