import { createRoute, z } from '@hono/zod-openapi';
import { authorize, requireOrg } from '../auth';
import { check } from '../iam/access';
import { ApiError } from '../lib/errors';
import { errors, jsonBody, jsonResponse, DeviceListQuery, ListQuery, pageOf, SECURED } from '../lib/openapi';
import { router } from '../lib/router';
import { OrgParam } from '../orgs/schemas';
import { ConnectedChannel, ConnectedDevice, ConnectOne, Connection, ConnectRequest, DisconnectRequest, IdParam, PairParam } from './schemas';
import * as conns from './service';

export const connectionsRouter = router();
const tags = ['connections'];
const security = SECURED;

/** Every pair is its own resource, so a deny policy on one pair refuses the whole call before anything is written. */
async function authorizePairs(c: Parameters<typeof requireOrg>[0], org: string, action: string, channelIds: string[], deviceIds: string[]) {
  const access = await requireOrg(c, org);
  for (const ch of new Set(channelIds)) for (const d of new Set(deviceIds)) check(access, action, `connections/${ch}/${d}`);
}

connectionsRouter.openapi(
  createRoute({ method: 'post', path: '/orgs/{org}/connections', operationId: 'connect', tags, security, summary: 'Connect devices to channels (every pair; re-connecting replaces the types)', request: { params: OrgParam, ...jsonBody(ConnectRequest) }, responses: { 201: jsonResponse(z.object({ connections: z.array(Connection) }), 'Connected'), ...errors(400, 401, 403, 404, 415, 422) } }),
  async (c) => {
    const { org } = c.req.valid('param');
    const { channel_ids, device_ids, types } = c.req.valid('json');
    await authorizePairs(c, org, 'connections:create', channel_ids, device_ids);
    await conns.requireAll(c.env.DB, org, channel_ids, device_ids);
    return c.json({ connections: await conns.connect(c.env.DB, org, channel_ids, device_ids, types) }, 201);
  },
);

connectionsRouter.openapi(
  createRoute({ method: 'delete', path: '/orgs/{org}/connections', operationId: 'disconnect', tags, security, summary: 'Disconnect devices from channels (every pair)', request: { params: OrgParam, ...jsonBody(DisconnectRequest) }, responses: { 204: { description: 'Disconnected' }, ...errors(400, 401, 403, 404, 415, 422) } }),
  async (c) => {
    const { org } = c.req.valid('param');
    const { channel_ids, device_ids } = c.req.valid('json');
    await authorizePairs(c, org, 'connections:delete', channel_ids, device_ids);
    await conns.requireAll(c.env.DB, org, channel_ids, device_ids);
    await conns.disconnect(c.env.DB, org, channel_ids, device_ids);
    return c.body(null, 204);
  },
);

connectionsRouter.openapi(
  createRoute({ method: 'put', path: '/orgs/{org}/channels/{channel}/devices/{device}', operationId: 'connectDevice', tags, security, summary: 'Connect one device to one channel, or replace its types', request: { params: PairParam, ...jsonBody(ConnectOne) }, responses: { 200: jsonResponse(Connection, 'Was connected: types replaced'), 201: jsonResponse(Connection, 'Connected (new)'), ...errors(400, 401, 403, 404, 415, 422) } }),
  async (c) => {
    const { org, channel, device } = c.req.valid('param');
    await authorize(c, org, 'connections:create', `connections/${channel}/${device}`);
    await conns.requireAll(c.env.DB, org, [channel], [device]);
    const { created, connection } = await conns.connectOne(c.env.DB, org, channel, device, c.req.valid('json').types);
    return created ? c.json(connection, 201) : c.json(connection, 200);
  },
);

connectionsRouter.openapi(
  createRoute({ method: 'delete', path: '/orgs/{org}/channels/{channel}/devices/{device}', operationId: 'disconnectDevice', tags, security, summary: 'Disconnect one device from one channel', request: { params: PairParam }, responses: { 204: { description: 'Disconnected' }, ...errors(401, 403, 404) } }),
  async (c) => {
    const { org, channel, device } = c.req.valid('param');
    await authorize(c, org, 'connections:delete', `connections/${channel}/${device}`);
    if (!(await conns.disconnect(c.env.DB, org, [channel], [device]))) throw new ApiError(404, 'not_found', 'this device is not connected to this channel');
    return c.body(null, 204);
  },
);

connectionsRouter.openapi(
  createRoute({ method: 'get', path: '/orgs/{org}/channels/{id}/devices', operationId: 'listChannelDevices', tags, security, summary: 'Devices connected to a channel, filtered by name and metadata', request: { params: IdParam, query: DeviceListQuery }, responses: { 200: jsonResponse(pageOf(ConnectedDevice, 'ConnectedDevicePage'), 'Devices'), ...errors(400, 401, 403, 404) } }),
  async (c) => {
    const { org, id } = c.req.valid('param');
    // The collection of one channel's connections: a policy on `connections/{channel}/*` governs it.
    await authorize(c, org, 'connections:read', `connections/${id}/*`);
    return c.json(await conns.devicesOfChannel(c.env.DB, org, id, c.req.valid('query')), 200);
  },
);

connectionsRouter.openapi(
  createRoute({ method: 'get', path: '/orgs/{org}/devices/{id}/channels', operationId: 'listDeviceChannels', tags, security, summary: 'Channels a device is connected to, filtered by name and metadata', request: { params: IdParam, query: ListQuery }, responses: { 200: jsonResponse(pageOf(ConnectedChannel, 'ConnectedChannelPage'), 'Channels'), ...errors(400, 401, 403, 404) } }),
  async (c) => {
    const { org, id } = c.req.valid('param');
    await authorize(c, org, 'connections:read', `connections/*/${id}`);
    return c.json(await conns.channelsOfDevice(c.env.DB, org, id, c.req.valid('query')), 200);
  },
);
