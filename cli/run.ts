import type { Command } from 'commander';
import { EdgefluxError } from '../sdk';
import { context, type Context } from './context';
import { withLoginHint } from './login-hint';

/** Nothing listening at the API's address: said as what to check, not only as Node's ECONNREFUSED. */
function withNetworkHint(e: unknown, ctx: Pick<Context, 'api'>): unknown {
  if (!(e instanceof EdgefluxError) || e.code !== 'network_error' || !/ECONNREFUSED/.test(e.detail)) return e;
  return new Error(`${e.detail}: nothing answers at ${ctx.api} — is the platform running (\`npm start\`)? Otherwise pass --api URL or set EDGEFLUX_API`, { cause: e });
}

/**
 * Wraps a command handler: builds the context from the command's (global) options and passes the
 * positional arguments and the command's own options. Errors propagate to main.ts, which prints
 * them and exits non-zero; a 401 on the stored session becomes a hint to log in (`loginHint: false`
 * for the commands that are the way in: register and login, whose 401 is a wrong password); an API
 * that does not answer at all becomes a hint to start it or point elsewhere.
 */
export function run<A extends unknown[]>(handler: (ctx: Context, ...args: A) => Promise<void> | void, opts: { loginHint?: boolean } = {}) {
  return async (...args: unknown[]): Promise<void> => {
    const cmd = args[args.length - 1] as Command;
    const ctx = context(cmd);
    try {
      await handler(ctx, ...(args.slice(0, -1) as A));
    } catch (e) {
      throw withNetworkHint(opts.loginHint === false ? e : withLoginHint(e, ctx), ctx);
    }
  };
}
