import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import type { Command } from 'commander';
import { show } from './output';
import { run } from './run';

/** The password: --password, EDGEFLUX_PASSWORD, a hidden prompt on a terminal, else the first line of stdin. */
async function password(given: string | undefined): Promise<string> {
  if (given) return given;
  if (process.env.EDGEFLUX_PASSWORD) return process.env.EDGEFLUX_PASSWORD;
  let muted = false;
  const output = new Writable({ write: (chunk, _enc, done) => (muted || process.stderr.write(chunk), done()) });
  const rl = createInterface({ input: process.stdin, output, terminal: process.stdin.isTTY === true });
  try {
    const line = new Promise<string>((ok) => rl.once('line', ok));
    const ended = new Promise<string>((_, fail) => rl.once('close', () => fail(new Error('no password given (--password, EDGEFLUX_PASSWORD or stdin)'))));
    if (process.stdin.isTTY) {
      process.stderr.write('Password: ');
      muted = true;
    }
    return (await Promise.race([line, ended])).trim();
  } finally {
    if (muted) process.stderr.write('\n');
    rl.close();
  }
}

export function authCommands(program: Command): void {
  program
    .command('register')
    .description('create a user account (then log in with `edgeflux login`)')
    .requiredOption('-e, --email <email>')
    .option('-p, --password <password>', 'default: EDGEFLUX_PASSWORD, a prompt, or stdin')
    .action(
      run(async (ctx, opts: { email: string; password?: string }) => {
        show(ctx.out, await ctx.client.users.create({ email: opts.email, password: await password(opts.password) }));
      }, { loginHint: false }),
    );

  program
    .command('login')
    .description("log in and store the session in the user's config dir")
    .requiredOption('-e, --email <email>')
    .option('-p, --password <password>', 'default: EDGEFLUX_PASSWORD, a prompt, or stdin')
    .action(
      run(async (ctx, opts: { email: string; password?: string }) => {
        const tokens = await ctx.client.login(opts.email, await password(opts.password));
        // Another user's default org would not be theirs.
        const org = ctx.config.email === opts.email && ctx.config.api === ctx.api ? ctx.config.org : undefined;
        ctx.save({ api: ctx.api, email: opts.email, token: tokens.access_token, refresh_token: tokens.refresh_token, org });
        const me = await ctx.client.users.me();
        if (!org && me.orgs.length === 1) ctx.save({ org: me.orgs[0]!.id });
        show(ctx.out, { api: ctx.api, email: me.email, user: me.id, org: ctx.config.org ?? null });
      }, { loginHint: false }),
    );

  program
    .command('logout')
    .description('revoke the stored session and forget it')
    .action(
      run(async (ctx) => {
        await ctx.client.logout().catch(() => {}); // an expired session is gone anyway
        ctx.save({ token: undefined, refresh_token: undefined });
        show(ctx.out, { logged_out: true });
      }),
    );

  program
    .command('whoami')
    .description('the logged-in user and their orgs')
    .action(run(async (ctx) => show(ctx.out, await ctx.client.users.me())));
}
