import { createRoute } from '@hono/zod-openapi';
import { authorize } from '../auth';
import type { AccessContext } from '../iam/access';
import { forbidden } from '../lib/errors';
import { errors, jsonBody, jsonResponse, pageOf, PageQuery, SECURED, created, createdResponse } from '../lib/openapi';
import { router } from '../lib/router';
import { OrgParam } from '../orgs/schemas';
import { allowPairs, assertMayGrant } from './authority';
import { Attachment, AttachmentOut, AttachmentParam, Policy, PolicyCreate, PolicyParam, PolicyUpdate } from './schemas';
import * as policies from './service';

/**
 * IAM-style policies: named lists of allow/deny statements, attached to members, devices, apps
 * and keys. The PDP (workers/iam) evaluates them; this folder only stores them, with two rules:
 * you cannot write or attach an allow you do not hold yourself (./authority.ts), and only an
 * owner may change what applies to an owner (so an admin cannot lock the owners out).
 */
export const policiesRouter = router();
const tags = ['policies'];
const security = SECURED;

function guardOwner(access: AccessContext): void {
  if (access.role !== 'owner') throw forbidden('only an owner can change the policies that apply to an owner');
}

policiesRouter.openapi(
  createRoute({ method: 'post', path: '/orgs/{org}/policies', operationId: 'createPolicy', tags, security, summary: 'Create a policy', request: { params: OrgParam, ...jsonBody(PolicyCreate) }, responses: { 201: createdResponse(Policy, 'Created'), ...errors(400, 401, 403, 404, 415, 422) } }),
  async (c) => {
    const { org } = c.req.valid('param');
    const { name, statements } = c.req.valid('json');
    const access = await authorize(c, org, 'policies:create', 'policies/*');
    assertMayGrant(access, allowPairs(statements), 'this policy');
    const policy = await policies.createPolicy(c.env.DB, org, name, statements);
    return c.json(created(c, policy, 'orgs', org, 'policies', policy.id), 201);
  },
);

policiesRouter.openapi(
  createRoute({ method: 'get', path: '/orgs/{org}/policies', operationId: 'listPolicies', tags, security, summary: 'List policies', request: { params: OrgParam, query: PageQuery }, responses: { 200: jsonResponse(pageOf(Policy, 'PolicyPage'), 'Policies'), ...errors(400, 401, 403, 404) } }),
  async (c) => {
    const { org } = c.req.valid('param');
    const { offset, limit } = c.req.valid('query');
    await authorize(c, org, 'policies:read', 'policies/*');
    return c.json(await policies.listPolicies(c.env.DB, org, offset, limit), 200);
  },
);

policiesRouter.openapi(
  createRoute({ method: 'get', path: '/orgs/{org}/policies/{id}', operationId: 'getPolicy', tags, security, summary: 'Get a policy', request: { params: PolicyParam }, responses: { 200: jsonResponse(Policy, 'Policy'), ...errors(401, 403, 404) } }),
  async (c) => {
    const { org, id } = c.req.valid('param');
    await authorize(c, org, 'policies:read', `policies/${id}`);
    return c.json(await policies.getPolicy(c.env.DB, org, id), 200);
  },
);

policiesRouter.openapi(
  createRoute({ method: 'patch', path: '/orgs/{org}/policies/{id}', operationId: 'updatePolicy', tags, security, summary: 'Rename a policy or replace its statements (takes effect on the next request)', request: { params: PolicyParam, ...jsonBody(PolicyUpdate) }, responses: { 200: jsonResponse(Policy, 'Updated'), ...errors(400, 401, 403, 404, 415, 422) } }),
  async (c) => {
    const { org, id } = c.req.valid('param');
    const patch = c.req.valid('json');
    const access = await authorize(c, org, 'policies:update', `policies/${id}`);
    await policies.getPolicy(c.env.DB, org, id);
    if (patch.statements) {
      assertMayGrant(access, allowPairs(patch.statements), 'this policy');
      if (await policies.attachedToOwner(c.env.DB, org, id)) guardOwner(access);
    }
    return c.json(await policies.updatePolicy(c.env.DB, org, id, patch), 200);
  },
);

policiesRouter.openapi(
  createRoute({ method: 'delete', path: '/orgs/{org}/policies/{id}', operationId: 'deletePolicy', tags, security, summary: 'Delete a policy (and all its attachments)', request: { params: PolicyParam }, responses: { 204: { description: 'Deleted' }, ...errors(401, 403, 404) } }),
  async (c) => {
    const { org, id } = c.req.valid('param');
    await authorize(c, org, 'policies:delete', `policies/${id}`);
    await policies.deletePolicy(c.env.DB, org, id);
    return c.body(null, 204);
  },
);

policiesRouter.openapi(
  createRoute({
    method: 'post',
    path: '/orgs/{org}/policies/{id}/attachments',
    operationId: 'attachPolicy',
    tags,
    security,
    summary: 'Attach a policy to a member (by user id), device, app or API key of this org',
    request: { params: PolicyParam, ...jsonBody(Attachment) },
    responses: { 201: createdResponse(AttachmentOut, 'Attached'), ...errors(400, 401, 403, 404, 409, 415, 422) },
  }),
  async (c) => {
    const { org, id } = c.req.valid('param');
    const { principal_type, principal_id } = c.req.valid('json');
    const access = await authorize(c, org, 'policies:update', `policies/${id}`);
    const policy = await policies.getPolicy(c.env.DB, org, id);
    await policies.assertPrincipal(c.env.DB, org, principal_type, principal_id);
    assertMayGrant(access, allowPairs(policy.statements), 'attaching this policy');
    if (principal_type === 'member' && (await policies.roleOf(c.env.DB, org, principal_id)) === 'owner') guardOwner(access);
    return c.json(created(c, await policies.attach(c.env.DB, org, id, principal_type, principal_id), 'orgs', org, 'policies', id, 'attachments', principal_type, principal_id), 201);
  },
);

policiesRouter.openapi(
  createRoute({ method: 'get', path: '/orgs/{org}/policies/{id}/attachments', operationId: 'listPolicyAttachments', tags, security, summary: 'Who a policy is attached to', request: { params: PolicyParam, query: PageQuery }, responses: { 200: jsonResponse(pageOf(AttachmentOut, 'AttachmentPage'), 'Attachments'), ...errors(400, 401, 403, 404) } }),
  async (c) => {
    const { org, id } = c.req.valid('param');
    const { offset, limit } = c.req.valid('query');
    await authorize(c, org, 'policies:read', `policies/${id}`);
    await policies.getPolicy(c.env.DB, org, id);
    return c.json(await policies.listAttachments(c.env.DB, org, id, offset, limit), 200);
  },
);

policiesRouter.openapi(
  createRoute({ method: 'delete', path: '/orgs/{org}/policies/{id}/attachments/{principal_type}/{principal_id}', operationId: 'detachPolicy', tags, security, summary: 'Detach a policy', request: { params: AttachmentParam }, responses: { 204: { description: 'Detached' }, ...errors(400, 401, 403, 404) } }),
  async (c) => {
    const { org, id, principal_type, principal_id } = c.req.valid('param');
    const access = await authorize(c, org, 'policies:update', `policies/${id}`);
    if (principal_type === 'member' && (await policies.roleOf(c.env.DB, org, principal_id)) === 'owner') guardOwner(access);
    await policies.detach(c.env.DB, org, id, principal_type, principal_id);
    return c.body(null, 204);
  },
);
