import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { Scalar } from '@scalar/hono-api-reference';
import type { AppEnv } from './app-env';
import { healthRouter } from './health';
import { onError, router } from './lib/router';
import { errors, MAX_BULK, MAX_METADATA_BYTES } from './lib/openapi';
import { ApiError } from './lib/errors';
import { authenticate } from './auth';
import { accessChanged } from './iam/access';
import { bumpAccessEpoch } from './iam/epochs';
import { recheckLiveChannelsSoon } from './lib/rechecks';
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

let routeMatchers: { method: string; re: RegExp }[] | null = null;

/** The methods of the routes whose path matches (middleware, registered for ALL, does not count). Built once. */
function methodsFor(routes: readonly { method: string; path: string }[], path: string): string[] {
  routeMatchers ??= routes
    .filter((r) => r.method !== 'ALL')
    .map((r) => {
      const pattern = r.path
        .split('/')
        .map((seg) => {
          const param = /^:\w+(?:\{(.+)\})?$/.exec(seg);
          if (param) return param[1] ? `(?:${param[1]})` : '[^/]+';
          return seg === '*' ? '.*' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        })
        .join('/');
      return { method: r.method, re: new RegExp(`^${pattern}$`) };
    });
  const methods = new Set(routeMatchers.filter((m) => m.re.test(path)).map((m) => m.method));
  if (methods.has('GET')) methods.add('HEAD');
  return [...methods].sort();
}

/** What a page on another origin may send and read (docs/auth.md, "Browsers on other origins"). */
const CORS = {
  allowMethods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
  // Range and the conditionals: a page downloads (and resumes) payloads as curl does (docs/query.md).
  allowHeaders: ['Authorization', 'Content-Type', 'Accept', 'If-None-Match', 'If-Match', 'If-Modified-Since', 'If-Unmodified-Since', 'Range', 'If-Range'],
  exposeHeaders: ['Link', 'Location', 'Retry-After', 'WWW-Authenticate', 'ETag', 'Content-Disposition', 'Content-Range', 'Accept-Ranges'],
  maxAge: 86_400,
};
let corsFor: { origins: string; handler: ReturnType<typeof cors> | null } | null = null;

/**
 * CORS for the API: every credential travels in the Authorization header (or a WebSocket
 * subprotocol), never in a cookie, so a page on another origin can use only a key it was given —
 * `CORS_ORIGINS` ("*" by default; a comma-separated list of origins; empty = none) says which
 * origins may. Not on /internal/*, which only the bridge calls.
 */
function corsHandler(origins: string | undefined): ReturnType<typeof cors> | null {
  const given = origins ?? '*';
  if (corsFor?.origins !== given) {
    const list = given.split(',').map((o) => o.trim()).filter((o) => o !== '');
    corsFor = { origins: given, handler: list.length === 0 ? null : cors({ ...CORS, origin: list.includes('*') ? '*' : list }) };
  }
  return corsFor.handler;
}

/**
 * A browser loading a page, not a script or an API client: Fetch Metadata says so (every current
 * browser); without it, a GET that asks for HTML.
 */
function isNavigation(req: Request): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const mode = req.headers.get('sec-fetch-mode');
  if (mode !== null) return mode === 'navigate';
  return /\btext\/html\b/.test(req.headers.get('accept') ?? '');
}

let apiRoots: Set<string> | null = null;

/** Whether `path` lies under one of the API's own first segments (/orgs, /channels, …): never answered with the console. Built once from the routes. */
function isApiPath(routes: readonly { method: string; path: string }[], path: string): boolean {
  apiRoots ??= new Set(routes.filter((r) => r.method !== 'ALL').map((r) => r.path.split('/')[1] ?? ''));
  return apiRoots.has(path.split('/')[1] ?? '');
}

/** The console's single page (index.html), answered for any of its client-side routes. */
async function consolePage(env: Env, req: Request): Promise<Response> {
  // The browser's own headers go along: a reload revalidates (If-None-Match → 304 Not Modified).
  const res = await env.ASSETS.fetch(new Request(new URL('/', req.url), { method: req.method, headers: req.headers }));
  if (!res.ok && res.status !== 304) throw new ApiError(404, 'not_found', 'no such route');
  return res;
}

/**
 * The org whose access data a write under /orgs/{org} may change. Creating an org changes no one
 * else's, and a user's own account (/users/me: the password) no message access.
 */
function orgOfPath(path: string): string | null {
  const m = /^\/orgs\/([^/]+)/.exec(path);
  if (!m?.[1]) return null;
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return m[1];
  }
}

/**
 * Writes that change no message decision leave the org's access epoch alone, so a provisioning
 * script or a dashboard renaming things does not make every bridge ask again about every session
 * of the org: creating a device, channel, API key or app (nothing was decided about ids that did
 * not exist), renaming an org, a device's or channel's name and metadata (the PDP reads neither),
 * a channel's limits (rates and sizes, not who).
 */
const NO_ACCESS_CHANGE: readonly (readonly [string, RegExp])[] = [
  ['POST', /^\/orgs\/[^/]+\/(?:(?:devices|channels)(?:\/bulk)?|keys|apps)\/?$/],
  ['PATCH', /^\/orgs\/[^/]+(?:\/(?:devices|channels)\/[^/]+)?\/?$/],
  ['PATCH', /^\/orgs\/[^/]+\/channels\/[^/]+\/limits\/?$/],
];

/** The largest JSON body of the management API: a bulk create of MAX_BULK items with the most metadata each, and room for JSON's escapes. */
const MAX_JSON_BODY = 2 * MAX_BULK * MAX_METADATA_BYTES;
const jsonBodyLimit = bodyLimit({
  maxSize: MAX_JSON_BODY,
  onError: () => {
    throw new ApiError(413, 'payload_too_large', `request body over ${MAX_JSON_BODY / 1024 / 1024} MiB: no route of this API takes one that large`);
  },
});

/**
 * The two answers the middleware above gives on every route it covers (every method but GET and
 * HEAD, outside /channels/*), before any route sees the request: 413 for a body over
 * MAX_JSON_BODY, 415 with Accept-Encoding for a content coding. Declared on each such operation
 * that takes a body, so a generated client and a validating proxy know them; a route that
 * declares its own 413 or 415 keeps it (one with no Accept-Encoding gains the header).
 */
function declareBodyGate(app: ReturnType<typeof router>): void {
  const tooLarge = { ...errors(413)['413'], description: `Request body over ${MAX_JSON_BODY / 1024 / 1024} MiB (every route refuses one that large)` };
  const encodingHeader = { 'Accept-Encoding': { description: 'With a refused Content-Encoding: `identity` (send the body as is)', schema: { type: 'string' as const } } };
  for (const def of app.openAPIRegistry.definitions) {
    if (def.type !== 'route') continue;
    const route = def.route;
    if (route.method === 'get' || route.method === 'head' || route.path.startsWith('/channels/') || !route.request?.body) continue;
    const responses = { ...route.responses };
    responses['413'] ??= tooLarge;
    const own = responses['415'] as { headers?: Record<string, unknown> } | undefined;
    if (!own) responses['415'] = { ...errors(415)['415'], description: 'Unsupported Content-Encoding', headers: encodingHeader };
    else if (!own.headers) responses['415'] = { ...own, description: 'Unsupported media type (Content-Type), or content coding (Content-Encoding: then with Accept-Encoding)', headers: encodingHeader };
    route.responses = Object.fromEntries(Object.entries(responses).sort(([a], [b]) => a.localeCompare(b)));
  }
}

/** The whole HTTP API: one Hono app composed of feature routers, one error shape, one OpenAPI document. */
export function buildApp() {
  const app = router();
  app.onError(onError);
  app.notFound((c) => {
    // RFC 9110 §15.5.6: a path that exists under other methods is 405 with Allow, not 404.
    const allow = methodsFor(app.routes, c.req.path);
    if (allow.length > 0) throw new ApiError(405, 'method_not_allowed', `${c.req.method} is not allowed on ${c.req.path}; use ${allow.join(', ')}`, undefined, { allow: allow.join(', ') });
    // No route and no asset: a browser navigating to a console route (/login, /o/…) gets the app,
    // which routes on the client; curl, fetch and a missing script get a 404 (wrangler.toml [assets]).
    if (isNavigation(c.req.raw) && !isApiPath(app.routes, c.req.path)) return consolePage(c.env, c.req.raw);
    // Routes take no trailing slash; say so rather than leave a caller guessing.
    const bare = c.req.path.length > 1 && c.req.path.endsWith('/') ? c.req.path.replace(/\/+$/, '') : null;
    if (bare && methodsFor(app.routes, bare).length > 0) throw new ApiError(404, 'not_found', `no such route: ${c.req.path} ends with a slash; the route is ${bare}`);
    throw new ApiError(404, 'not_found', 'no such route');
  });

  // Before authentication: a preflight carries no credential. Only for a request with an Origin
  // (browsers send it on every cross-origin request): curl, the SDK in Node and the bridge skip it.
  // Answers with and without an Origin differ (Access-Control-* headers), so every one says
  // `Vary: Origin` for caches (RFC 9110 §12.5.5; Fetch "CORS protocol and HTTP caches").
  app.use('*', async (c, next) => {
    if (c.req.path.startsWith('/internal/')) return next();
    const handler = corsHandler((c.env as Env | undefined)?.CORS_ORIGINS);
    if (!handler) return next();
    if (c.req.header('origin') === undefined) await next();
    else {
      const preflight = await handler(c, next); // a preflight's answer is returned, not set
      if (preflight instanceof Response) c.res = preflight;
    }
    if (c.res.status === 101 || /(^|,)\s*origin\s*(,|$)/i.test(c.res.headers.get('vary') ?? '')) return;
    try {
      c.res.headers.append('Vary', 'Origin');
    } catch {
      // An answer fetched from elsewhere (an actor, the assets) has immutable headers: copy it
      // (Hono's setter copies the old headers over the new answer's, so append after it).
      c.res = new Response(c.res.body, c.res);
      c.res.headers.append('Vary', 'Origin');
    }
  });

  // A JSON body larger than any the API takes is refused before it is read (message routes have
  // their own limit; /internal/authorize a tighter one). The bridge's routes too: it relays devices.
  // A content coding is not removed here (only message routes decode one: workers/messages/body.ts):
  // a gzipped JSON body is 415 with Accept-Encoding (RFC 9110 §15.5.16), not "not valid JSON".
  app.use('*', async (c, next) => {
    if (c.req.method === 'GET' || c.req.method === 'HEAD' || c.req.method === 'OPTIONS' || c.req.path.startsWith('/channels/')) return next();
    const coding = c.req.header('content-encoding')?.trim().toLowerCase();
    if (coding && coding !== 'identity') {
      throw new ApiError(415, 'unsupported_content_encoding', `Content-Encoding ${JSON.stringify(coding)} is not supported on this route: send the JSON body as is`, undefined, { 'accept-encoding': 'identity' });
    }
    return jsonBodyLimit(c, next);
  });

  // Everything under /orgs and /users/me needs a credential; message routes and /oauth authenticate themselves.
  for (const p of ['/orgs', '/orgs/*', '/users/me', '/users/me/*']) app.use(p, authenticate());
  // Any write there may change who may do what: this isolate's cached message decisions go
  // (iam/access.ts), and the org's access epoch moves, which tells bridges to ask again (iam/epochs.ts).
  for (const p of ['/orgs/*', '/users/me', '/users/me/*'])
    app.use(p, async (c, next) => {
      if (c.req.method === 'GET' || c.req.method === 'HEAD') return next();
      accessChanged();
      await next();
      accessChanged();
      // A refused write (4xx) changed nothing; it must not make bridges ask again about the org either.
      const org = orgOfPath(c.req.path);
      const harmless = NO_ACCESS_CHANGE.some(([method, path]) => c.req.method === method && path.test(c.req.path));
      if (org === null || harmless || (c.res.status >= 400 && c.res.status < 500)) return;
      try {
        await bumpAccessEpoch(c.env.DB, org);
        // WebSocket subscribers of the org's channels are asked about again too, after the answer.
        // Coalesced: writes in quick succession share one recheck that starts after the last of them (lib/rechecks.ts).
        c.executionCtx.waitUntil(recheckLiveChannelsSoon(c.env, org).catch((e: unknown) => console.error(`org ${org}: live channels not rechecked`, e)));
      } catch (e) {
        // The write is done and its answer (a rotated key's new key) must reach the caller; bridges
        // then learn of it only within their 60 s bound. Said loudly: that bound is not the promise.
        console.error(`access epoch of org ${org} not moved after ${c.req.method} ${c.req.path}: ${e instanceof Error ? e.message : String(e)}`);
      }
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

  declareBodyGate(app);
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
  // Not to be framed by another site either (the console's own pages carry the same, console/_headers).
  app.use('/docs', async (c, next) => {
    await next();
    c.header('Content-Security-Policy', "frame-ancestors 'none'");
    c.header('X-Frame-Options', 'DENY');
    c.header('X-Content-Type-Options', 'nosniff');
  });
  app.get('/docs', Scalar({ url: '/openapi.json', pageTitle: 'Edgeflux API reference' }));
  return app;
}

export type App = ReturnType<typeof buildApp>;
export type { AppEnv };
