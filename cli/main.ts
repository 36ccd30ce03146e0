/**
 * The `edgeflux` command line (bin/edgeflux.js runs the build of this file, dist/cli.js).
 * Every command goes through the SDK; docs/cli.md lists them.
 */
import { Command, CommanderError } from 'commander';
import { EdgefluxError } from '../sdk';
import { authCommands } from './auth';
import { DEFAULT_API } from './config';
import { messageCommands } from './messages';
import { provisionCommand } from './provision';
import { accessCommands, orgCommands, thingCommands } from './resources';

declare const __VERSION__: string;

export function program(): Command {
  const p = new Command('edgeflux')
    .description('Edgeflux IoT platform: manage orgs, devices, channels and access; send, stream and query messages')
    .version(typeof __VERSION__ === 'string' ? __VERSION__ : 'dev')
    .option('--api <url>', `API base URL (env EDGEFLUX_API; default: the one logged in to, else ${DEFAULT_API})`)
    .option('--org <id>', 'org to act in (env EDGEFLUX_ORG; default: set by `orgs create` / `orgs use`)')
    .option('--token <token>', 'act with an API key or app token instead of the stored session (env EDGEFLUX_TOKEN)')
    .option('--device-key <key>', 'act as a device, e.g. for send and sub (env EDGEFLUX_DEVICE_KEY)')
    .option('--json', 'JSON output (the default when stdout is not a terminal)')
    .showHelpAfterError()
    .exitOverride();
  authCommands(p);
  orgCommands(p);
  thingCommands(p);
  accessCommands(p);
  messageCommands(p);
  provisionCommand(p);
  return p;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode; // commander printed the usage error or help
    if (e instanceof EdgefluxError) process.stderr.write(`error: ${e.detail} (${e.status ? `${e.status} ` : ''}${e.code})\n`);
    else process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv);
// A closing WebSocket may linger for its close handshake; the answer is already out.
setTimeout(() => process.exit(), 1000).unref();
