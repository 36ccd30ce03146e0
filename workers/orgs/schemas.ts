import { z } from '@hono/zod-openapi';
import { Name, PageQuery } from '../lib/openapi';
import { Email } from '../users/schemas';

export const RoleSchema = z.enum(['owner', 'admin', 'member', 'viewer']).openapi('Role');
export const Org = z.object({ id: z.string(), name: z.string(), created_at: z.number().int(), role: RoleSchema.optional() }).openapi('Org');
export const OrgCreate = z.strictObject({ name: Name }).openapi('OrgCreate');
export const Member = z.object({ user_id: z.string(), email: z.string(), role: RoleSchema, created_at: z.number().int() }).openapi('Member');
export const MemberInvite = z.strictObject({ email: Email, role: RoleSchema.default('member') }).openapi('MemberInvite');
export const MemberQuery = PageQuery.extend({ email: z.string().max(254).optional().openapi({ description: 'Case-insensitive substring of the email' }) });
export const RoleChange = z.strictObject({ role: RoleSchema }).openapi('RoleChange');
export const OrgParam = z.object({ org: z.string().min(1).openapi({ param: { name: 'org', in: 'path' } }) });
export const MemberParam = OrgParam.extend({ user: z.string().min(1).openapi({ param: { name: 'user', in: 'path' } }) });
