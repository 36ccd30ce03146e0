import { z } from '@hono/zod-openapi';
import { Name } from '../lib/openapi';
import { OrgParam } from '../orgs/schemas';
import { Scopes } from '../policies/schemas';

export const MIN_KEY_TTL = 60;
export const MAX_KEY_TTL = 10 * 365 * 24 * 3600;

export const ApiKey = z
  .object({
    id: z.string(),
    name: z.string(),
    scopes: z.array(z.string()),
    owner_type: z.enum(['user', 'app']),
    owner_id: z.string(),
    expires_at: z.number().int().nullable().openapi({ description: 'ms since epoch; null = never' }),
    revoked_at: z.number().int().nullable(),
    created_at: z.number().int(),
  })
  .openapi('ApiKey');
export const ApiKeyWithSecret = ApiKey.extend({
  key: z.string().openapi({ description: 'The API key (a JWT). Shown once: use it as `Authorization: Bearer <key>`' }),
}).openapi('ApiKeyWithSecret');
export const ApiKeyCreate = z
  .strictObject({
    name: Name,
    scopes: Scopes,
    expires_in: z
      .number()
      .int()
      .min(MIN_KEY_TTL)
      .max(MAX_KEY_TTL)
      .optional()
      .openapi({ description: `Seconds until the key expires (${MIN_KEY_TTL}..${MAX_KEY_TTL}); omit for a key that never expires` }),
  })
  .openapi('ApiKeyCreate');
export const ApiKeyParam = OrgParam.extend({ id: z.string().min(1).openapi({ param: { name: 'id', in: 'path' } }) });
