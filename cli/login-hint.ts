import { EdgefluxError } from '../sdk';
import { NoOrgError, type Context } from './context';

/**
 * A 401 on a command that acts with the stored session, said in terms of what to do: with no
 * session stored (after `logout`, or never logged in to this API) the API's "missing or invalid
 * credentials" would not tell the user to log in; with a stored one that was refused (expired,
 * revoked, its refresh token spent) the API's answer stays, with the hint to log in again.
 * A refused --token or --device-key is the caller's own credential: its 401 is left as it is.
 * With no credential at all, a command that needs an org fails before it asks the API ("no org"):
 * that is said as "not logged in" too — a newcomer has no org id to pass, and logging in picks one.
 */
export function withLoginHint(e: unknown, ctx: Pick<Context, 'credential' | 'api' | 'config'>): unknown {
  const refused = e instanceof EdgefluxError && e.status === 401;
  if (!refused && !(e instanceof NoOrgError && ctx.credential === 'none')) return e;
  const login = `\`edgeflux login -e ${ctx.config.email && ctx.config.api === ctx.api ? ctx.config.email : 'EMAIL'}\``;
  if (ctx.credential === 'none') {
    const where = ctx.config.api !== undefined && ctx.config.api !== ctx.api ? ` to ${ctx.api}` : '';
    return new Error(`not logged in${where}: run ${login} (or pass --token or --device-key)`, { cause: e });
  }
  if (!(e instanceof EdgefluxError)) return e;
  // The API's answer may say "log in again" itself (a reused refresh token): not said twice.
  const again = /log in again/i.test(e.detail) ? 'run' : 'log in again with';
  if (ctx.credential === 'session') return new Error(`${e.detail} (401 ${e.code}): the stored session was refused; ${again} ${login}`, { cause: e });
  return e;
}
