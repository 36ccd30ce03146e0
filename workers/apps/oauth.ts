import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { AppEnv } from '../app-env';
import { signToken } from '../auth/tokens';
import { globMatch, scopeToStatement } from '../iam/pdp';
import { jsonResponse } from '../lib/openapi';
import { router } from '../lib/router';
import { MAX_SCOPE_LENGTH, MAX_SCOPES, scopeProblem } from '../policies/schemas';
import { OAuthError, OAuthErrorCode, TokenRequest, TokenResponse } from './schemas';
import { authenticateClient } from './service';

/**
 * The OAuth 2.0 token endpoint, client credentials grant only (RFC 6749 §4.4). It speaks the
 * protocol's own error format (§5.2) rather than problem+json, because OAuth client libraries
 * parse `error`; and it parses its own body, since the standard encoding is a form.
 */
export const oauthRouter = router();
export const APP_TOKEN_TTL = 3600;

type Code = z.infer<typeof OAuthErrorCode>;
class OAuthFailure extends Error {
  constructor(
    readonly code: Code,
    message: string,
  ) {
    super(message);
  }
}
const fail = (code: Code, message: string) => new OAuthFailure(code, message);

const PARAMS = ['grant_type', 'scope', 'client_id', 'client_secret'] as const;
type Params = Partial<Record<(typeof PARAMS)[number], string>>;

/** The request parameters from a form (the standard, Appendix B) or a JSON object. */
async function readParams(req: Request): Promise<Params> {
  const type = (req.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  const out: Params = {};
  // Decoded by hand: the form is UTF-8 text (Appendix B), but workerd warns on .text() of a form.
  const text = async () => new TextDecoder().decode(await req.arrayBuffer());
  if (type === 'application/x-www-form-urlencoded') {
    const form = new URLSearchParams(await text());
    for (const k of PARAMS) {
      const all = form.getAll(k);
      // §3.2: parameters MUST NOT be included more than once.
      if (all.length > 1) throw fail('invalid_request', `parameter ${k} given more than once`);
      if (all[0] !== undefined) out[k] = all[0];
    }
    return out;
  }
  if (type === 'application/json') {
    let body: unknown;
    try {
      body = JSON.parse(await text());
    } catch {
      throw fail('invalid_request', 'body is not valid JSON');
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw fail('invalid_request', 'body must be a JSON object');
    for (const k of PARAMS) {
      const v = (body as Record<string, unknown>)[k];
      if (v === undefined) continue;
      if (typeof v !== 'string') throw fail('invalid_request', `parameter ${k} must be a string`);
      out[k] = v;
    }
    return out;
  }
  throw fail('invalid_request', 'send the parameters as application/x-www-form-urlencoded (or application/json)');
}

/** §2.3.1: HTTP Basic with the client id and secret each form-urlencoded first. */
function basicCredentials(header: string): { id: string; secret: string } {
  const m = /^Basic\s+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(header);
  if (!m) throw fail('invalid_client', 'the Authorization header must use the Basic scheme');
  try {
    const bytes = Uint8Array.from(atob(m[1]!), (ch) => ch.charCodeAt(0));
    const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
    const colon = text.indexOf(':');
    if (colon < 0) throw new Error('no colon');
    const dec = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '));
    return { id: dec(text.slice(0, colon)), secret: dec(text.slice(colon + 1)) };
  } catch {
    throw fail('invalid_client', 'malformed Basic credentials');
  }
}

function clientCredentials(req: Request, p: Params): { id: string; secret: string } {
  const header = req.headers.get('authorization');
  if (header !== null) {
    const basic = basicCredentials(header);
    // §2.3: a client MUST NOT use more than one authentication method per request.
    if (p.client_secret !== undefined) throw fail('invalid_request', 'use either HTTP Basic or client_secret in the body, not both');
    if (p.client_id !== undefined && p.client_id !== basic.id) throw fail('invalid_request', 'client_id does not match the Basic credentials');
    return basic;
  }
  if (!p.client_id || p.client_secret === undefined) throw fail('invalid_client', 'client authentication required: HTTP Basic, or client_id and client_secret');
  return { id: p.client_id, secret: p.client_secret };
}

/** Requested scopes, each within some scope of the app (action and resource both covered by globMatch). */
function grantedScopes(requested: string | undefined, appScopes: string[]): string[] {
  if (requested === undefined) return appScopes; // §3.3: the pre-defined default is everything the app holds
  const list = [...new Set(requested.split(' ').filter(Boolean))];
  if (!list.length) throw fail('invalid_scope', 'scope is empty');
  // Bounded as a key's or an app's own scopes are: a token's principal reaches the bridge, whose questions the worker takes only within them.
  if (list.length > MAX_SCOPES) throw fail('invalid_scope', `at most ${MAX_SCOPES} scopes`);
  const long = list.find((s) => s.length > MAX_SCOPE_LENGTH);
  if (long) throw fail('invalid_scope', `a scope is at most ${MAX_SCOPE_LENGTH} characters (${long.slice(0, 40)}… has ${long.length})`);
  const held = appScopes.map(scopeToStatement);
  for (const s of list) {
    const why = scopeProblem(s);
    if (why) throw fail('invalid_scope', why);
    const want = scopeToStatement(s);
    const ok = held.some((h) => globMatch(h.actions[0]!, want.actions[0]!) && globMatch(h.resources[0]!, want.resources[0]!));
    if (!ok) throw fail('invalid_scope', `scope "${s}" is not within the app's scopes`);
  }
  return list;
}

async function issue(c: Context<AppEnv>) {
  const p = await readParams(c.req.raw);
  if (!p.grant_type) throw fail('invalid_request', 'grant_type is required');
  if (p.grant_type !== 'client_credentials') throw fail('unsupported_grant_type', 'only grant_type=client_credentials is supported');
  const creds = clientCredentials(c.req.raw, p);
  const app = await authenticateClient(c.env.DB, creds.id, creds.secret);
  if (!app) throw fail('invalid_client', 'unknown client or wrong secret');
  const scopes = grantedScopes(p.scope, app.scopes);
  // The app's token epoch (0 until a rotation revoked what was issued): a later such rotation ends this token.
  const access_token = await signToken(c.env, { typ: 'app', sub: app.id, org: app.orgId, scp: scopes, ...(app.tokenEpoch > 0 ? { ep: app.tokenEpoch } : {}) }, APP_TOKEN_TTL);
  return { access_token, token_type: 'Bearer' as const, expires_in: APP_TOKEN_TTL, scope: scopes.join(' ') };
}

// §5.1: responses with tokens or credentials MUST NOT be cached.
const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' };

oauthRouter.openAPIRegistry.register('TokenRequest', TokenRequest);
oauthRouter.openAPIRegistry.registerComponent('securitySchemes', 'client_basic', {
  type: 'http',
  scheme: 'basic',
  description: "An app's client_id and client_secret (RFC 6749 §2.3.1)",
});

oauthRouter.openapi(
  createRoute({
    method: 'post',
    path: '/oauth/token',
    operationId: 'appLogin',
    tags: ['apps'],
    security: [{ client_basic: [] }, {}],
    summary: 'OAuth 2.0 token endpoint: client credentials grant (RFC 6749 §4.4)',
    description:
      'Authenticate with HTTP Basic (client_id:client_secret) or with client_id and client_secret in the body, never both. ' +
      'The access token is an app token valid for 1 hour. Errors here use the OAuth 2.0 error format of RFC 6749 §5.2 ' +
      '(`{error, error_description}`), not problem+json: `invalid_client` is 401 with `WWW-Authenticate: Basic`, the others are 400.',
    request: {
      body: {
        required: true,
        content: {
          'application/x-www-form-urlencoded': { schema: { $ref: '#/components/schemas/TokenRequest' } },
          'application/json': { schema: { $ref: '#/components/schemas/TokenRequest' } },
        },
      },
    },
    responses: {
      200: jsonResponse(TokenResponse, 'Issued'),
      400: jsonResponse(OAuthError, 'invalid_request, unsupported_grant_type or invalid_scope'),
      401: { ...jsonResponse(OAuthError, 'invalid_client'), headers: { 'WWW-Authenticate': { description: '`Basic realm="edgeflux", charset="UTF-8"` (RFC 6749 §5.2)', required: true, schema: { type: 'string' } } } },
    },
  }),
  async (c) => {
    try {
      return c.json(await issue(c), 200, NO_STORE);
    } catch (e) {
      if (!(e instanceof OAuthFailure)) throw e;
      const body = { error: e.code, error_description: e.message };
      if (e.code === 'invalid_client') return c.json(body, 401, { ...NO_STORE, 'www-authenticate': 'Basic realm="edgeflux", charset="UTF-8"' });
      return c.json(body, 400, NO_STORE);
    }
  },
);
