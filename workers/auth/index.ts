import { createMiddleware } from 'hono/factory';
import type { AppEnv } from '../app-env';
import { unauthorized } from '../lib/errors';
import { extractCredential, resolvePrincipal } from './credentials';

export { authorize, authorizeChannel, requireOrg, requireUser } from '../iam/access';
export { deviceByKey, extractCredential, forgetCredential, resolvePrincipal } from './credentials';
export type { Principal } from './principal';

/** Resolves the caller into `c.var.principal`, or answers 401. */
export const authenticate = () =>
  createMiddleware<AppEnv>(async (c, next) => {
    const { credential } = extractCredential(c.req.raw);
    if (!credential) throw unauthorized();
    c.set('principal', await resolvePrincipal(c.env, credential));
    await next();
  });
