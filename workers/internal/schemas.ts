import { z } from '@hono/zod-openapi';
import { AUTHORIZE_BATCH } from '../../shared/authorize';
import { channelIdProblem, MAX_CHANNEL_ID_LENGTH } from '../../shared/topics';
import { MAX_PRINCIPAL_ID_LENGTH, MAX_SCOPE_LENGTH, MAX_SCOPES } from '../policies/schemas';

/*
 * The bridge is trusted, but what it relays came from devices: every string is bounded as the API
 * that made it bounds it, so a body's size is known before it is read (MAX_AUTHORIZE_BODY).
 */

/** An id the platform made (a UUID today): at most as long as a policy attachment's principal id, no control characters. */
const Id = z
  .string()
  .min(1)
  .max(MAX_PRINCIPAL_ID_LENGTH)
  .regex(/^[^\u0000-\u001f\u007f]*$/, 'an id has no control characters');
/** As every protocol addresses channels (shared/topics.ts): at most 128 URL-safe characters. */
export const ChannelId = z
  .string()
  .superRefine((id, ctx) => {
    const why = channelIdProblem(id);
    if (why) ctx.addIssue({ code: 'custom', message: why });
  })
  .openapi({ minLength: 1, maxLength: MAX_CHANNEL_ID_LENGTH, description: 'Letters, digits and . _ ~ - (not starting with .)' });
const Scopes = z.array(z.string().min(1).max(MAX_SCOPE_LENGTH)).max(MAX_SCOPES);
/** KEY_STAMP_LENGTH hex digits of the device key's SHA-256 today (workers/auth/credentials.ts); never empty, which would match any key. */
const KEY_STAMP_MAX = 64;
const KeyStamp = z.string().regex(new RegExp(`^[0-9a-f]{1,${KEY_STAMP_MAX}}$`), 'a key stamp is hex digits of the device key\'s SHA-256');

/** A principal as the bridge carries it after /internal/authenticate (the bridge is trusted). */
export const PrincipalSchema = z
  .discriminatedUnion('kind', [
    z.object({ kind: z.literal('user'), id: Id, exp: z.number().int().optional() }),
    z.object({ kind: z.literal('device'), id: Id, orgId: Id, keyStamp: KeyStamp.optional() }),
    z.object({ kind: z.literal('app'), id: Id, orgId: Id, scopes: Scopes, exp: z.number().int().optional(), epoch: z.number().int().min(0).optional() }),
    z.object({
      kind: z.literal('key'),
      id: Id,
      orgId: Id,
      owner: z.object({ kind: z.enum(['user', 'app']), id: Id }),
      scopes: Scopes,
      exp: z.number().int().optional(),
    }),
  ])
  .openapi('Principal');

/**
 * The largest /internal/authorize body the schema can accept, with room to spare: each id three
 * bytes a character (UTF-8), scopes and channel ids ASCII, 256 bytes of keys and punctuation per
 * principal and 64 per check. A larger body is refused (413) before it is read.
 */
const MAX_PRINCIPAL_JSON = 4 * 3 * MAX_PRINCIPAL_ID_LENGTH + KEY_STAMP_MAX + MAX_SCOPES * (MAX_SCOPE_LENGTH + 3) + 256;
const MAX_CHECK_JSON = MAX_CHANNEL_ID_LENGTH + 64;
export const MAX_AUTHORIZE_BODY = AUTHORIZE_BATCH.items * MAX_PRINCIPAL_JSON + AUTHORIZE_BATCH.checks * MAX_CHECK_JSON;

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
    .array(z.object({ channel: ChannelId, action: MessageAction }))
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
