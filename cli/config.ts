import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';

/**
 * The CLI's own state: which API, the session, the default org. One JSON file in the user's
 * config dir ($XDG_CONFIG_HOME/edgeflux, else ~/.config/edgeflux), readable by the user only.
 */
export const DEFAULT_API = 'http://127.0.0.1:8787';

const ConfigSchema = z.object({
  api: z.string().optional(),
  token: z.string().optional(),
  refresh_token: z.string().optional(),
  email: z.string().optional(),
  org: z.string().optional(),
});
export type Config = z.infer<typeof ConfigSchema>;

/**
 * An API's URL in one form, so a session stored for it is found whatever way it is written
 * (`http://host:8787/`, `HTTP://HOST:8787`): the WHATWG URL's form (scheme and host lowercase,
 * default port dropped) without trailing slashes, as the SDK strips them. Not a URL: as given
 * (less trailing slashes), for the client to refuse.
 */
export function normalApi(raw: string): string {
  let url = raw.trim();
  try {
    url = new URL(url).href;
  } catch {
    // left to the client
  }
  return url.replace(/\/+$/, '');
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, 'edgeflux', 'config.json');
}

export function loadConfig(path = configPath()): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return {};
  }
  const parsed = ConfigSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`${path} is not a valid edgeflux config; delete it and log in again`);
  // One written before the API's URL was normalised (`login --api http://host:8787/`) still matches.
  return parsed.data.api === undefined ? parsed.data : { ...parsed.data, api: normalApi(parsed.data.api) };
}

/** Written whole and renamed into place: another run (a long `edgeflux sub` reading it before a refresh) never sees half a file. */
export function saveConfig(config: Config, path = configPath()): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  chmodSync(tmp, 0o600); // also when umask or an old file had wider permissions
  renameSync(tmp, path);
}
