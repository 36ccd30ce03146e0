import { createRoute, z } from '@hono/zod-openapi';
import { authorize } from '../auth';
import { channelActor } from '../lib/actors';
import { errors, jsonBody, jsonResponse, ListQuery, pageOf, SECURED, created, createdResponse } from '../lib/openapi';
import { router } from '../lib/router';
import { OrgParam } from '../orgs/schemas';
import { ApiError } from '../lib/errors';
import { Channel, ChannelBulk, ChannelCreate, ChannelLimits, ChannelLimitsPatch, ChannelParam, ChannelUpdate } from './schemas';
import * as channels from './service';

export const channelsRouter = router();
const tags = ['channels'];
const security = SECURED;

channelsRouter.openapi(
  createRoute({ method: 'post', path: '/orgs/{org}/channels', operationId: 'createChannel', tags, security, summary: 'Create a channel', request: { params: OrgParam, ...jsonBody(ChannelCreate) }, responses: { 201: createdResponse(Channel, 'Created'), ...errors(400, 401, 403, 404, 415, 422) } }),
  async (c) => {
    const { org } = c.req.valid('param');
    await authorize(c, org, 'channels:create', 'channels/*');
    const [channel] = await channels.createChannels(c.env.DB, org, [c.req.valid('json')]);
    return c.json(created(c, channel!, 'orgs', org, 'channels', channel!.id), 201);
  },
);

channelsRouter.openapi(
  createRoute({ method: 'post', path: '/orgs/{org}/channels/bulk', operationId: 'createChannels', tags, security, summary: 'Create up to 100 channels at once (all or nothing)', request: { params: OrgParam, ...jsonBody(ChannelBulk) }, responses: { 201: jsonResponse(z.object({ items: z.array(Channel) }), 'Created'), ...errors(400, 401, 403, 404, 415, 422) } }),
  async (c) => {
    const { org } = c.req.valid('param');
    await authorize(c, org, 'channels:create', 'channels/*');
    return c.json({ items: await channels.createChannels(c.env.DB, org, c.req.valid('json').channels) }, 201);
  },
);

channelsRouter.openapi(
  createRoute({ method: 'get', path: '/orgs/{org}/channels', operationId: 'listChannels', tags, security, summary: 'List channels, filtered by name and metadata', request: { params: OrgParam, query: ListQuery }, responses: { 200: jsonResponse(pageOf(Channel, 'ChannelPage'), 'Channels'), ...errors(400, 401, 403, 404) } }),
  async (c) => {
    const { org } = c.req.valid('param');
    await authorize(c, org, 'channels:read', 'channels/*');
    return c.json(await channels.listChannels(c.env.DB, org, c.req.valid('query')), 200);
  },
);

channelsRouter.openapi(
  createRoute({ method: 'get', path: '/orgs/{org}/channels/{id}', operationId: 'getChannel', tags, security, summary: 'Get a channel', request: { params: ChannelParam }, responses: { 200: jsonResponse(Channel, 'Channel'), ...errors(401, 403, 404) } }),
  async (c) => {
    const { org, id } = c.req.valid('param');
    await authorize(c, org, 'channels:read', `channels/${id}`);
    return c.json(await channels.getChannel(c.env.DB, org, id), 200);
  },
);

channelsRouter.openapi(
  createRoute({ method: 'patch', path: '/orgs/{org}/channels/{id}', operationId: 'updateChannel', tags, security, summary: 'Rename a channel or replace its metadata', request: { params: ChannelParam, ...jsonBody(ChannelUpdate) }, responses: { 200: jsonResponse(Channel, 'Updated'), ...errors(400, 401, 403, 404, 415, 422) } }),
  async (c) => {
    const { org, id } = c.req.valid('param');
    await authorize(c, org, 'channels:update', `channels/${id}`);
    return c.json(await channels.updateChannel(c.env.DB, org, id, c.req.valid('json')), 200);
  },
);

channelsRouter.openapi(
  createRoute({ method: 'delete', path: '/orgs/{org}/channels/{id}', operationId: 'deleteChannel', tags, security, summary: 'Delete a channel with its connections and stored messages', request: { params: ChannelParam }, responses: { 204: { description: 'Deleted' }, ...errors(401, 403, 404) } }),
  async (c) => {
    const { org, id } = c.req.valid('param');
    await authorize(c, org, 'channels:delete', `channels/${id}`);
    await channels.deleteChannel(c.env, org, id);
    return c.body(null, 204);
  },
);

// Limits live in the channel's actor (persisted there). Reading them is reading the channel (`channels:read`,
// which a key's scopes and a policy can name; there is no `limits:read` action to scope a key to); changing
// them takes `limits:update`, which only owners and admins hold by default (members could otherwise lift the
// rate limits that protect the whole org).
const actor = channelActor;

channelsRouter.openapi(
  createRoute({ method: 'get', path: '/orgs/{org}/channels/{id}/limits', operationId: 'getChannelLimits', tags, security, summary: "The channel's effective limits", request: { params: ChannelParam }, responses: { 200: jsonResponse(ChannelLimits, 'Limits'), ...errors(401, 403, 404) } }),
  async (c) => {
    const { org, id } = c.req.valid('param');
    await authorize(c, org, 'channels:read', `channels/${id}`);
    await channels.getChannel(c.env.DB, org, id);
    const r = await actor(c.env, id).configure(id, {});
    if (!r.ok) throw new ApiError(500, 'channel_unavailable', r.message);
    return c.json(r.config, 200);
  },
);

channelsRouter.openapi(
  createRoute({ method: 'patch', path: '/orgs/{org}/channels/{id}/limits', operationId: 'updateChannelLimits', tags, security, summary: "Change some of the channel's limits (rates, payload size, replay window, drain batching)", request: { params: ChannelParam, ...jsonBody(ChannelLimitsPatch) }, responses: { 200: jsonResponse(ChannelLimits, 'The effective limits'), ...errors(400, 401, 403, 404, 415, 422) } }),
  async (c) => {
    const { org, id } = c.req.valid('param');
    await authorize(c, org, 'limits:update', `channels/${id}`);
    await channels.getChannel(c.env.DB, org, id);
    const r = await actor(c.env, id).configure(id, c.req.valid('json'));
    if (!r.ok) throw new ApiError(422, 'invalid_limits', r.message);
    return c.json(r.config, 200);
  },
);
