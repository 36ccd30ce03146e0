import { useState } from 'preact/hooks';
import { logIn, api } from '../session';
import { PageHeading, Problem, useAction, useTitle } from '../ui';

/** Log in, or create an account and log in with it. */
export function LoginPage() {
  const [mode, setMode] = useState<'login' | 'register'>('login');
  const action = useAction();
  const submit = (e: SubmitEvent) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget as HTMLFormElement);
    const email = String(f.get('email'));
    const password = String(f.get('password'));
    void action.run(async () => {
      if (mode === 'register') await api.users.create({ email, password });
      await logIn(email, password);
    });
  };
  const register = mode === 'register';
  useTitle(register ? 'Create an account' : 'Log in');
  return (
    <main class="login">
      <PageHeading id="app-title">Edgeflux</PageHeading>
      <form onSubmit={submit} aria-labelledby="login-title">
        <h2 id="login-title">{register ? 'Create an account' : 'Log in'}</h2>
        <label>
          Email
          <input name="email" type="email" autocomplete="username" required />
        </label>
        <label>
          Password
          <input name="password" type="password" autocomplete={register ? 'new-password' : 'current-password'} minLength={register ? 8 : undefined} required />
        </label>
        <Problem error={action.error} />
        <button type="submit" disabled={action.busy}>
          {register ? 'Create account' : 'Log in'}
        </button>
        <p>
          {register ? 'Have an account? ' : 'New here? '}
          <button
            type="button"
            class="link"
            onClick={() => {
              action.clear();
              setMode(register ? 'login' : 'register');
            }}
          >
            {register ? 'Log in' : 'Create an account'}
          </button>
        </p>
      </form>
    </main>
  );
}
