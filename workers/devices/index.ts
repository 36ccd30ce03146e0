import { createRoute } from '@hono/zod-openapi';
import { authorize } from '../auth';
import { errors, jsonBody, jsonResponse, DeviceListQuery, pageOf, SECURED, created, createdResponse } from '../lib/openapi';
import { router } from '../lib/router';
import { OrgParam } from '../orgs/schemas';
import { z } from '@hono/zod-openapi';
import { Device, DeviceBulk, DeviceCreate, DeviceParam, DeviceUpdate, DeviceWithKey, KeyRotated } from './schemas';
import * as devices from './service';

export const devicesRouter = router();
const tags = ['devices'];
const security = SECURED;

devicesRouter.openapi(
  createRoute({ method: 'post', path: '/orgs/{org}/devices', operationId: 'createDevice', tags, security, summary: 'Create a device (its key is shown once)', request: { params: OrgParam, ...jsonBody(DeviceCreate) }, responses: { 201: createdResponse(DeviceWithKey, 'Created'), ...errors(400, 401, 403, 404, 415, 422) } }),
  async (c) => {
    const { org } = c.req.valid('param');
    await authorize(c, org, 'devices:create', 'devices/*');
    const [device] = await devices.createDevices(c.env.DB, org, [c.req.valid('json')]);
    return c.json(created(c, device!, 'orgs', org, 'devices', device!.id), 201);
  },
);

devicesRouter.openapi(
  createRoute({ method: 'post', path: '/orgs/{org}/devices/bulk', operationId: 'createDevices', tags, security, summary: 'Create up to 100 devices at once (all or nothing)', request: { params: OrgParam, ...jsonBody(DeviceBulk) }, responses: { 201: jsonResponse(z.object({ items: z.array(DeviceWithKey) }), 'Created'), ...errors(400, 401, 403, 404, 415, 422) } }),
  async (c) => {
    const { org } = c.req.valid('param');
    await authorize(c, org, 'devices:create', 'devices/*');
    return c.json({ items: await devices.createDevices(c.env.DB, org, c.req.valid('json').devices) }, 201);
  },
);

devicesRouter.openapi(
  createRoute({ method: 'get', path: '/orgs/{org}/devices', operationId: 'listDevices', tags, security, summary: 'List devices, filtered by name and metadata', request: { params: OrgParam, query: DeviceListQuery }, responses: { 200: jsonResponse(pageOf(Device, 'DevicePage'), 'Devices'), ...errors(400, 401, 403, 404) } }),
  async (c) => {
    const { org } = c.req.valid('param');
    await authorize(c, org, 'devices:read', 'devices/*');
    return c.json(await devices.listDevices(c.env.DB, org, c.req.valid('query')), 200);
  },
);

devicesRouter.openapi(
  createRoute({ method: 'get', path: '/orgs/{org}/devices/{id}', operationId: 'getDevice', tags, security, summary: 'Get a device (never its key)', request: { params: DeviceParam }, responses: { 200: jsonResponse(Device, 'Device'), ...errors(401, 403, 404) } }),
  async (c) => {
    const { org, id } = c.req.valid('param');
    await authorize(c, org, 'devices:read', `devices/${id}`);
    return c.json(await devices.getDevice(c.env.DB, org, id), 200);
  },
);

devicesRouter.openapi(
  createRoute({ method: 'patch', path: '/orgs/{org}/devices/{id}', operationId: 'updateDevice', tags, security, summary: 'Rename a device or replace its metadata', request: { params: DeviceParam, ...jsonBody(DeviceUpdate) }, responses: { 200: jsonResponse(Device, 'Updated'), ...errors(400, 401, 403, 404, 415, 422) } }),
  async (c) => {
    const { org, id } = c.req.valid('param');
    await authorize(c, org, 'devices:update', `devices/${id}`);
    return c.json(await devices.updateDevice(c.env.DB, org, id, c.req.valid('json')), 200);
  },
);

devicesRouter.openapi(
  createRoute({ method: 'delete', path: '/orgs/{org}/devices/{id}', operationId: 'deleteDevice', tags, security, summary: 'Delete a device (its connections and key go with it)', request: { params: DeviceParam }, responses: { 204: { description: 'Deleted' }, ...errors(401, 403, 404) } }),
  async (c) => {
    const { org, id } = c.req.valid('param');
    await authorize(c, org, 'devices:delete', `devices/${id}`);
    await devices.deleteDevice(c.env.DB, org, id);
    return c.body(null, 204);
  },
);

devicesRouter.openapi(
  createRoute({ method: 'post', path: '/orgs/{org}/devices/{id}/key', operationId: 'rotateDeviceKey', tags, security, summary: 'Rotate the device key: the old one is refused, and live connections that presented it end at their next message or keep-alive', request: { params: DeviceParam }, responses: { 201: createdResponse(KeyRotated, 'New key, shown once'), ...errors(401, 403, 404) } }),
  async (c) => {
    const { org, id } = c.req.valid('param');
    await authorize(c, org, 'devices:update', `devices/${id}`);
    return c.json(created(c, await devices.rotateKey(c.env.DB, org, id), 'orgs', org, 'devices', id), 201);
  },
);
