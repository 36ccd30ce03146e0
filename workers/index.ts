import { buildApp } from './app';

export { ChannelActor } from '../objects/channel';

const app = buildApp();

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
