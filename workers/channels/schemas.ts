import { z } from '@hono/zod-openapi';
import { MAX_BULK, Metadata, MetadataInput, Name } from '../lib/openapi';
import { OrgParam } from '../orgs/schemas';

export const Channel = z
  .object({ id: z.string(), name: z.string(), metadata: Metadata, created_at: z.number().int(), updated_at: z.number().int() })
  .openapi('Channel');
export const ChannelCreate = z.strictObject({ name: Name, metadata: MetadataInput.optional() }).openapi('ChannelCreate');
export const ChannelBulk = z.strictObject({ channels: z.array(ChannelCreate).min(1).max(MAX_BULK) }).openapi('ChannelBulkCreate');
export const ChannelUpdate = z
  .strictObject({ name: Name.optional(), metadata: MetadataInput.optional() })
  .refine((u) => u.name !== undefined || u.metadata !== undefined, 'give name and/or metadata')
  .openapi('ChannelUpdate');
export const ChannelParam = OrgParam.extend({ id: z.string().min(1).openapi({ param: { name: 'id', in: 'path' } }) });

const Rate = z.strictObject({ perSecond: z.number().positive(), burst: z.number().positive() });
const Window = z.strictObject({ bytes: z.number().int().positive(), messages: z.number().int().positive() });
/** The channel actor's limits (objects/channel/config.ts; docs/channel-actor.md explains each). */
export const ChannelLimits = z
  .object({
    maxPayloadBytes: z.number().int(),
    recentWindow: z.number().int(),
    replayMaxBytes: z.number().int(),
    channelRate: Rate,
    publisherRate: Rate,
    subscriberWindow: Window,
    linkWindow: Window,
    maxLinkSubscriptions: z.number().int(),
    drainBatch: z.number().int(),
    drainDelayMs: z.number().int(),
    defaultContentType: z.string().openapi({ description: 'Content type of messages published without one (MQTT 3.1.1, CoAP without Content-Format, HTTP without Content-Type); default application/octet-stream', example: 'application/senml+json' }),
    retentionDays: z.number().openapi({ description: 'How long stored messages are kept, in days (fractions allowed, at least 1/24: an hour); 0 (the default) keeps them forever. Expired messages are deleted from the query API, payload storage and the replay window within about an hour; retained messages stay', example: 30 }),
  })
  .openapi('ChannelLimits');
/** A partial update; ranges are checked by the actor (422 names the setting). */
export const ChannelLimitsPatch = ChannelLimits.partial().strict().openapi('ChannelLimitsPatch');
