import { z } from '@hono/zod-openapi';
import { Name } from '../lib/openapi';
import { OrgParam } from '../orgs/schemas';
import { Scopes } from '../policies/schemas';

export const App = z
  .object({
    id: z.string(),
    name: z.string(),
    client_id: z.string(),
    scopes: z.array(z.string()),
    created_by: z.string().openapi({ description: 'Id of the user (or app) accountable for creating it' }),
    created_at: z.number().int(),
    updated_at: z.number().int(),
  })
  .openapi('App');
export const AppWithSecret = App.extend({
  client_secret: z.string().openapi({ description: 'Shown once; only its SHA-256 is stored' }),
}).openapi('AppWithSecret');
export const SecretRotation = z
  .strictObject({
    revokeIssued: z.boolean().optional().openapi({ description: "Also revoke every API key the app issued and end its access tokens already issued, at once (after a leak). Default false: they go on (tokens until they expire)" }),
  })
  .openapi('SecretRotation');
export const RotatedApp = AppWithSecret.extend({
  revoked_keys: z.number().int().optional().openapi({ description: 'With `revokeIssued`: how many of its API keys were revoked (those revoked before are not counted)' }),
}).openapi('RotatedApp');
export const AppCreate = z.strictObject({ name: Name, scopes: Scopes }).openapi('AppCreate');
export const AppUpdate = z
  .strictObject({ name: Name.optional(), scopes: Scopes.optional() })
  .refine((b) => b.name !== undefined || b.scopes !== undefined, 'give name and/or scopes')
  .openapi('AppUpdate');
export const AppParam = OrgParam.extend({ id: z.string().min(1).openapi({ param: { name: 'id', in: 'path' } }) });

/** RFC 6749 §4.4.2 (+ §2.3.1 body credentials). Sent as application/x-www-form-urlencoded, or JSON. */
export const TokenRequest = z
  .object({
    grant_type: z.literal('client_credentials'),
    scope: z.string().optional().openapi({ description: 'Space-separated; each must be within the app\'s scopes. Default: all of them' }),
    client_id: z.string().optional().openapi({ description: 'Only when not using HTTP Basic' }),
    client_secret: z.string().optional().openapi({ description: 'Only when not using HTTP Basic' }),
  })
  .openapi('TokenRequest');

/** RFC 6749 §5.1 */
export const TokenResponse = z
  .object({
    access_token: z.string(),
    token_type: z.literal('Bearer'),
    expires_in: z.number().int(),
    scope: z.string().openapi({ description: 'Space-separated scopes granted' }),
  })
  .openapi('OAuthTokenResponse');

/** RFC 6749 §5.2 — the token endpoint's own error shape (not problem+json; OAuth clients parse this). */
export const OAuthErrorCode = z.enum(['invalid_request', 'invalid_client', 'unsupported_grant_type', 'invalid_scope']);
export const OAuthError = z.object({ error: OAuthErrorCode, error_description: z.string() }).openapi('OAuthError');
