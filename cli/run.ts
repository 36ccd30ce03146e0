import type { Command } from 'commander';
import { context, type Context } from './context';

/**
 * Wraps a command handler: builds the context from the command's (global) options and passes the
 * positional arguments and the command's own options. Errors propagate to main.ts, which prints
 * them and exits non-zero.
 */
export function run<A extends unknown[]>(handler: (ctx: Context, ...args: A) => Promise<void> | void) {
  return async (...args: unknown[]): Promise<void> => {
    const cmd = args[args.length - 1] as Command;
    await handler(context(cmd), ...(args.slice(0, -1) as A));
  };
}
