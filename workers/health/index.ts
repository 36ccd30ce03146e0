import { createRoute, z } from '@hono/zod-openapi';
import pkg from '../../package.json';
import { router } from '../lib/router';
import { jsonResponse } from '../lib/openapi';

export const healthRouter = router();

healthRouter.openapi(
  createRoute({
    method: 'get',
    path: '/health',
    operationId: 'getHealth',
    tags: ['meta'],
    summary: 'Liveness and storage check',
    responses: {
      200: jsonResponse(z.object({ status: z.literal('ok'), d1: z.literal('ok') }), 'Healthy'),
      503: jsonResponse(z.object({ status: z.literal('degraded'), d1: z.string() }), 'A dependency is failing'),
    },
  }),
  async (c) => {
    try {
      await c.env.DB.prepare('SELECT 1').first();
      return c.json({ status: 'ok' as const, d1: 'ok' as const }, 200);
    } catch (e) {
      return c.json({ status: 'degraded' as const, d1: String(e) }, 503);
    }
  },
);

healthRouter.openapi(
  createRoute({
    method: 'get',
    path: '/version',
    operationId: 'getVersion',
    tags: ['meta'],
    summary: 'Build and API version',
    responses: { 200: jsonResponse(z.object({ name: z.string(), version: z.string(), api: z.string() }), 'Version') },
  }),
  (c) => c.json({ name: pkg.name, version: pkg.version, api: '1' }, 200),
);
