import { z } from '@hono/zod-openapi';
import { OrgParam } from '../orgs/schemas';
import { Channel } from '../channels/schemas';
import { Device } from '../devices/schemas';

export const ConnectionType = z.enum(['publish', 'subscribe']).openapi('ConnectionType');
const Types = z.array(ConnectionType).min(1).max(2).default(['publish', 'subscribe']).openapi({ description: 'What the devices may do on the channels; both by default' });
const Ids = z.array(z.string().min(1)).min(1).max(1000);

export const MAX_PAIRS = 1000;
export const ConnectRequest = z
  .strictObject({ channel_ids: Ids, device_ids: Ids, types: Types })
  .refine((r) => new Set(r.channel_ids).size * new Set(r.device_ids).size <= MAX_PAIRS, `at most ${MAX_PAIRS} channel × device pairs per call`)
  .openapi('ConnectRequest');
export const DisconnectRequest = z
  .strictObject({ channel_ids: Ids, device_ids: Ids })
  .refine((r) => new Set(r.channel_ids).size * new Set(r.device_ids).size <= MAX_PAIRS, `at most ${MAX_PAIRS} channel × device pairs per call`)
  .openapi('DisconnectRequest');
export const Connection = z.object({ channel_id: z.string(), device_id: z.string(), types: z.array(ConnectionType) }).openapi('Connection');
export const ConnectOne = z.strictObject({ types: Types }).openapi('ConnectOne');
export const PairParam = OrgParam.extend({
  channel: z.string().min(1).openapi({ param: { name: 'channel', in: 'path' } }),
  device: z.string().min(1).openapi({ param: { name: 'device', in: 'path' } }),
});
export const IdParam = OrgParam.extend({ id: z.string().min(1).openapi({ param: { name: 'id', in: 'path' } }) });
export const ConnectedDevice = Device.extend({ types: z.array(ConnectionType) }).openapi('ConnectedDevice');
export const ConnectedChannel = Channel.extend({ types: z.array(ConnectionType) }).openapi('ConnectedChannel');
