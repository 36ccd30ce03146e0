import { buildApp } from './app';
import { startPurges } from './lib/actors';

export { ChannelActor } from '../objects/channel';
export { ChannelPurger } from '../objects/purger';
export { SessionActor } from '../objects/session';
export { StoreWriter } from '../objects/writer';

const app = buildApp();

export default {
  fetch: app.fetch,
  // The cron trigger (wrangler.toml): the purger's backstop, for purges recorded while it could not be told.
  scheduled: (_controller, env, ctx) => ctx.waitUntil(startPurges(env)),
} satisfies ExportedHandler<Env>;
