import { z } from '@hono/zod-openapi';
import { isKnownActionPattern } from '../iam/pdp';
import { Name } from '../lib/openapi';
import { OrgParam } from '../orgs/schemas';

/**
 * Scopes and statements are the two ways to write permissions; both name actions from the
 * PDP's ACTIONS list (with `*`), so a typo is a 422 instead of a permission that never matches.
 */

const unknownAction = (a: string) => `unknown action "${a}" (see ACTIONS in docs/auth.md)`;

// RFC 6749 §3.3 scope-token: visible ASCII except space, `"` and `\`, so scopes travel in the OAuth `scope` parameter.
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

/** `action` or `action@resource`, both with `*` wildcards. */
export function scopeProblem(scope: string): string | null {
  if (!SCOPE_TOKEN.test(scope)) return `scope "${scope}" has characters not allowed in an OAuth scope`;
  const at = scope.indexOf('@');
  const action = at < 0 ? scope : scope.slice(0, at);
  if (at >= 0 && at === scope.length - 1) return `scope "${scope}" names no resource after "@"`;
  return isKnownActionPattern(action) ? null : unknownAction(action);
}

/** Bounds of a credential's scopes (keys and apps take them; the bridge's principals carry them). */
export const MAX_SCOPE_LENGTH = 300;
export const MAX_SCOPES = 50;
/** The longest principal id a policy attachment names (ids are UUIDs today). */
export const MAX_PRINCIPAL_ID_LENGTH = 200;

export const Scope = z
  .string()
  .min(1)
  .max(MAX_SCOPE_LENGTH)
  .superRefine((s, ctx) => {
    const why = scopeProblem(s);
    if (why) ctx.addIssue({ code: 'custom', message: why });
  })
  .openapi({ description: '`action` or `action@resource`, `*` as wildcard', example: 'devices:read@devices/*' });
export const Scopes = z.array(Scope).min(1).max(MAX_SCOPES).openapi({ example: ['orgs:read', 'devices:*'] });

const ActionPattern = z
  .string()
  .min(1)
  .max(100)
  .refine(isKnownActionPattern, { error: (i) => unknownAction(String(i.input)) })
  .openapi({ example: 'devices:*' });
const ResourcePattern = z
  .string()
  .min(1)
  .max(300)
  .regex(/^\S+$/, 'a resource pattern has no whitespace')
  .openapi({ example: 'devices/*' });

export const StatementSchema = z
  .strictObject({
    effect: z.enum(['allow', 'deny']),
    actions: z.array(ActionPattern).min(1).max(20),
    resources: z.array(ResourcePattern).min(1).max(20),
  })
  .openapi('Statement');
const Statements = z.array(StatementSchema).min(1).max(50);

export const Policy = z
  .object({ id: z.string(), name: z.string(), statements: Statements, created_at: z.number().int(), updated_at: z.number().int() })
  .openapi('Policy');
export const PolicyCreate = z.strictObject({ name: Name, statements: Statements }).openapi('PolicyCreate');
export const PolicyUpdate = z
  .strictObject({ name: Name.optional(), statements: Statements.optional() })
  .refine((b) => b.name !== undefined || b.statements !== undefined, 'give name and/or statements')
  .openapi('PolicyUpdate');

export const PrincipalType = z.enum(['member', 'device', 'app', 'key']).openapi('PrincipalType');
const AttachmentFields = {
  principal_type: PrincipalType,
  principal_id: z.string().min(1).max(MAX_PRINCIPAL_ID_LENGTH).openapi({ description: 'member: the user id; device, app, key: its id' }),
};
export const Attachment = z.strictObject(AttachmentFields).openapi('AttachmentCreate');
// Not `Attachment.extend`: that is published as allOf [AttachmentCreate, {policy_id, created_at}],
// and the request's closed object (additionalProperties: false) makes the pair match no answer.
export const AttachmentOut = z.object({ ...AttachmentFields, policy_id: z.string(), created_at: z.number().int() }).openapi('Attachment');

export const PolicyParam = OrgParam.extend({ id: z.string().min(1).openapi({ param: { name: 'id', in: 'path' } }) });
export const AttachmentParam = PolicyParam.extend({
  principal_type: PrincipalType.openapi({ param: { name: 'principal_type', in: 'path' } }),
  principal_id: z.string().min(1).openapi({ param: { name: 'principal_id', in: 'path' } }),
});
