import { buildApp } from './app';

export { ChannelActor } from '../objects/channel';
export { SessionActor } from '../objects/session';
export { StoreWriter } from '../objects/writer';

const app = buildApp();

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
