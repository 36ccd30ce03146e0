import { z } from '@hono/zod-openapi';
import { MAX_BULK, Metadata, MetadataInput, Name } from '../lib/openapi';
import { OrgParam } from '../orgs/schemas';

export const Device = z
  .object({
    id: z.string(),
    name: z.string(),
    metadata: Metadata,
    online: z.boolean().openapi({ description: 'Connected to the bridge right now' }),
    last_seen: z.number().int().nullable().openapi({ description: 'ms since epoch of the last connect/disconnect' }),
    created_at: z.number().int(),
    updated_at: z.number().int(),
  })
  .openapi('Device');
export const DeviceWithKey = Device.extend({ key: z.string().openapi({ description: 'The device key. Shown only now; store it.' }) }).openapi('DeviceWithKey');
export const DeviceCreate = z.strictObject({ name: Name, metadata: MetadataInput.optional() }).openapi('DeviceCreate');
export const DeviceBulk = z.strictObject({ devices: z.array(DeviceCreate).min(1).max(MAX_BULK) }).openapi('DeviceBulkCreate');
export const DeviceUpdate = z
  .strictObject({ name: Name.optional(), metadata: MetadataInput.optional() })
  .refine((u) => u.name !== undefined || u.metadata !== undefined, 'give name and/or metadata')
  .openapi('DeviceUpdate');
export const DeviceParam = OrgParam.extend({ id: z.string().min(1).openapi({ param: { name: 'id', in: 'path' } }) });
export const KeyRotated = z.object({ id: z.string(), key: z.string() }).openapi('DeviceKey');
