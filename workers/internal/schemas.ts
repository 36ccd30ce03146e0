import { z } from '@hono/zod-openapi';
import { AUTHORIZE_BATCH } from '../../shared/authorize';

/** A principal as the bridge carries it after /internal/authenticate (the bridge is trusted). */
export const PrincipalSchema = z
  .discriminatedUnion('kind', [
    z.object({ kind: z.literal('user'), id: z.string(), exp: z.number().int().optional() }),
    z.object({ kind: z.literal('device'), id: z.string(), orgId: z.string(), keyStamp: z.string().max(64).optional() }),
    z.object({ kind: z.literal('app'), id: z.string(), orgId: z.string(), scopes: z.array(z.string()), exp: z.number().int().optional() }),
    z.object({
      kind: z.literal('key'),
      id: z.string(),
      orgId: z.string(),
      owner: z.object({ kind: z.enum(['user', 'app']), id: z.string() }),
      scopes: z.array(z.string()),
      exp: z.number().int().optional(),
    }),
  ])
  .openapi('Principal');

export const MessageAction = z.enum(['messages:publish', 'messages:subscribe', 'messages:read']);

export const AuthenticateRequest = z
  .object({
    username: z.string().max(1024).optional().openapi({ description: 'MQTT username: the device id (optional for JWTs)' }),
    password: z.string().min(1).max(8192).openapi({ description: 'Device key, API key or app token' }),
  })
  .openapi('BridgeAuthenticate');

const AuthorizeItem = z.object({
  principal: PrincipalSchema,
  checks: z
    .array(z.object({ channel: z.string().min(1), action: MessageAction }))
    .max(AUTHORIZE_BATCH.checksPerItem)
    .openapi({ description: 'None: only whether the credential is still good (`refused`)' }),
});

export const AuthorizeRequest = AuthorizeItem.openapi('BridgeAuthorize');

export const AuthorizeBatchRequest = z
  .object({
    items: z
      .array(AuthorizeItem)
      .min(1)
      .max(AUTHORIZE_BATCH.items)
      .openapi({ description: `Questions of many sessions at once, answered in this order (at most ${AUTHORIZE_BATCH.items}, and ${AUTHORIZE_BATCH.checks} checks in all)` }),
  })
  .refine((b) => b.items.reduce((n, i) => n + i.checks.length, 0) <= AUTHORIZE_BATCH.checks, { message: `a batch holds at most ${AUTHORIZE_BATCH.checks} checks in all`, path: ['items'] })
  .openapi('BridgeAuthorizeBatch');

export const AuthorizeResult = z
  .object({
    results: z.array(z.object({ channel: z.string(), action: MessageAction, allowed: z.boolean(), status: z.number().int(), reason: z.string().optional() })),
    refused: z
      .object({ status: z.number().int(), reason: z.string() })
      .optional()
      .openapi({ description: 'The credential itself is no longer good (a key revoked, rotated or run out; the device deleted): every result is this refusal' }),
  })
  .openapi('BridgeAuthorizeResult');

export const AuthorizeBatchResult = z.object({ items: z.array(AuthorizeResult) }).openapi('BridgeAuthorizeBatchResult');

export const ChannelsRequest = z.object({ principal: PrincipalSchema, action: MessageAction }).openapi('BridgeChannels');

export const PresenceRequest = z
  .object({
    online: z.boolean(),
    at: z.number().int().nonnegative().optional().openapi({ description: "The bridge's clock (ms) when it happened; later updates win" }),
    bridge: z.string().min(1).max(256).optional().openapi({ description: 'Which bridge reports; a device is online while any bridge has it online' }),
  })
  .openapi('BridgePresence');

export const BridgeResetRequest = z.object({ at: z.number().int().nonnegative().optional() }).openapi('BridgeReset');

export const AccessChangesRequest = z
  .object({ since: z.number().int().nonnegative().nullable().openapi({ description: 'The `epoch` of the last answer; null the first time' }) })
  .openapi('BridgeAccessChanges');

export const AccessChangesResult = z
  .object({
    epoch: z.number().int().openapi({ description: 'Where the sequence is now: `since` next time' }),
    orgs: z.array(z.string()).openapi({ description: "Orgs whose access data was written after `since`: forget the decisions cached for their principals" }),
    all: z.boolean().openapi({ description: 'Forget every cached decision (too many orgs changed, a change touching any org, the sequence went backwards, or the first question)' }),
  })
  .openapi('BridgeAccessChangesResult');
