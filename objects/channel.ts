// The channel actor lives in objects/channel/; this path is what workers/index.ts imports.
export { ChannelActor } from './channel/index';
export type { ChannelConfig, ChannelInfo, PublishInput, PublishResult } from './channel/index';
