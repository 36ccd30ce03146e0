import type { Command } from 'commander';
import { Edgeflux } from '../sdk';
import { configPath, DEFAULT_API, loadConfig, normalApi, saveConfig, type Config } from './config';
import type { OutputOptions } from './output';

/** Options every command accepts (defined on the program, see main.ts). */
export interface GlobalOptions {
  api?: string;
  json?: boolean;
  org?: string;
  token?: string;
  deviceKey?: string;
}

/** What a command needs: the client (with the stored session), the org, output settings, the config. */
export interface Context {
  client: Edgeflux;
  out: OutputOptions;
  config: Config;
  api: string;
  /** What the client acts with: --device-key, --token, the stored session, or nothing (not logged in to this API). */
  credential: 'device' | 'token' | 'session' | 'none';
  /** The org to act in: --org, EDGEFLUX_ORG, or the one chosen with `orgs use`. */
  org(): string;
  save(patch: Partial<Config>): void;
}

/** No org given or chosen: said as "log in" instead when there is no credential at all (cli/login-hint.ts). */
export class NoOrgError extends Error {}

export function context(cmd: Command): Context {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const path = configPath();
  const config = loadConfig(path);
  // In one form (normalApi), as loadConfig gives the stored one: a session is matched to its API by string.
  const api = normalApi(g.api || process.env.EDGEFLUX_API || config.api || DEFAULT_API);
  // Onto what the file holds now, not this run's copy: another run may have changed it since (`orgs use`, a login).
  const save = (patch: Partial<Config>) => {
    Object.assign(config, patch);
    saveConfig({ ...loadConfig(path), ...patch }, path);
  };
  const deviceKey = g.deviceKey || process.env.EDGEFLUX_DEVICE_KEY;
  const token = g.token || process.env.EDGEFLUX_TOKEN;
  // A stored session belongs to the API it was made with.
  const session = config.api === undefined || config.api === api ? config : {};
  // The file still holds this run's session: the same API and the same user.
  const sameSession = (now: Config) => (now.api === undefined || now.api === api) && now.email === session.email;
  const client = new Edgeflux({
    url: api,
    ...(deviceKey ? { deviceKey } : token ? { token } : { token: session.token, refreshToken: session.refresh_token }),
    // A refreshed session is stored at once, so the next command starts from it — unless the file
    // holds another session by now (a login as someone else, or to another API): that one stays.
    onTokens: (t) => !deviceKey && !token && sameSession(loadConfig(path)) && save({ api, token: t.access_token, refresh_token: t.refresh_token }),
    // Other runs share the session (a long `edgeflux sub` beside short commands): before refreshing,
    // take a newer pair one of them stored rather than reuse a spent refresh token (docs/auth.md).
    ...(deviceKey || token
      ? {}
      : {
          currentTokens: () => {
            const now = loadConfig(path);
            return sameSession(now) ? { access_token: now.token, refresh_token: now.refresh_token } : null;
          },
        }),
  });
  return {
    client,
    out: { json: g.json === true },
    config,
    api,
    credential: deviceKey ? 'device' : token ? 'token' : session.token || session.refresh_token ? 'session' : 'none',
    org: () => {
      const org = g.org || process.env.EDGEFLUX_ORG || config.org;
      if (!org) throw new NoOrgError('no org: pass --org ID, set EDGEFLUX_ORG, or run `edgeflux orgs use ID`');
      return org;
    },
    save,
  };
}
