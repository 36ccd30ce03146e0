import { Scalar } from '@scalar/hono-api-reference';
import type { AppEnv } from './app-env';
import { healthRouter } from './health';
import { onError, router } from './lib/router';
import { ApiError } from './lib/errors';
import { authenticate } from './auth';
import { accessChanged } from './iam/access';
import { usersRouter } from './users';
import { orgsRouter } from './orgs';
import { appsRouter } from './apps';
import { channelsRouter } from './channels';
import { connectionsRouter } from './connections';
import { devicesRouter } from './devices';
import { keysRouter } from './keys';
import { policiesRouter } from './policies';
import { internalRouter } from './internal';
import { sessionsRouter } from './internal/sessions';
import { messages } from './messages';
import { queryRouter } from './query';

/** The whole HTTP API: one Hono app composed of feature routers, one error shape, one OpenAPI document. */
export function buildApp() {
  const app = router();
  app.onError(onError);
  app.notFound(() => {
    throw new ApiError(404, 'not_found', 'no such route');
  });

  // Everything under /orgs and /users/me needs a credential; message routes and /oauth authenticate themselves.
  for (const p of ['/orgs', '/orgs/*', '/users/me', '/users/me/*']) app.use(p, authenticate());
  // Any write there may change who may do what: cached message decisions go (iam/access.ts).
  for (const p of ['/orgs/*', '/users/me', '/users/me/*'])
    app.use(p, async (c, next) => {
      if (c.req.method !== 'GET' && c.req.method !== 'HEAD') accessChanged();
      await next();
      if (c.req.method !== 'GET' && c.req.method !== 'HEAD') accessChanged();
    });

  app.route('/', healthRouter);
  app.route('/', usersRouter);
  app.route('/', orgsRouter);
  app.route('/', devicesRouter);
  app.route('/', channelsRouter);
  app.route('/', connectionsRouter);
  app.route('/', appsRouter);
  app.route('/', keysRouter);
  app.route('/', policiesRouter);
  app.route('/', internalRouter);
  app.route('/', sessionsRouter);
  app.route('/', messages);
  app.route('/', queryRouter); // after messages: it answers the GETs that are not WebSocket upgrades

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: 'A user access token, an API key, or an app access token',
  });
  app.openAPIRegistry.registerComponent('securitySchemes', 'device', {
    type: 'apiKey',
    in: 'header',
    name: 'Authorization',
    description: '`Device <device key>`',
  });
  app.openAPIRegistry.registerComponent('securitySchemes', 'bridge', {
    type: 'http',
    scheme: 'bearer',
    description: 'The bridge service credential (BRIDGE_SECRET); internal routes only',
  });
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'Edgeflux API', version: '1', description: 'Provisioning, auth and messaging for Edgeflux. Errors are RFC 9457 problem+json.' },
  });
  // Browsable reference rendered from the same document (Scalar; its script loads from a CDN in the browser).
  app.get('/docs', Scalar({ url: '/openapi.json', pageTitle: 'Edgeflux API reference' }));
  return app;
}

export type App = ReturnType<typeof buildApp>;
export type { AppEnv };
