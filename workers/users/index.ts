import { createRoute, z } from '@hono/zod-openapi';
import { router } from '../lib/router';
import { requireUser } from '../auth';
import { notFound } from '../lib/errors';
import { errors, jsonBody, jsonResponse, USER_ONLY, created, createdResponse } from '../lib/openapi';
import { Credentials, Login, PasswordChange, Refresh, Tokens, User } from './schemas';
import * as users from './service';
import { clientOf } from './throttle';

export const usersRouter = router();
const tags = ['users'];

usersRouter.openapi(
  createRoute({ method: 'post', path: '/users', operationId: 'registerUser', tags, summary: 'Register a user', request: jsonBody(Credentials), responses: { 201: createdResponse(User, 'Registered'), ...errors(400, 409, 415, 422) } }),
  async (c) => {
    const { email, password } = c.req.valid('json');
    return c.json(created(c, await users.register(c.env.DB, email, password), 'users', 'me'), 201);
  },
);

usersRouter.openapi(
  createRoute({ method: 'post', path: '/tokens', operationId: 'login', tags, summary: 'Log in: access JWT + refresh token (after 6 attempts in a row for an email from one address, each further one waits; past 100 failed ones an hour for the email, every address waits: 429 with Retry-After)', request: jsonBody(Login), responses: { 201: jsonResponse(Tokens, 'Issued'), ...errors(400, 401, 415, 422, 429) } }),
  async (c) => {
    const { email, password } = c.req.valid('json');
    // Cloudflare's edge sets CF-Connecting-IP whatever a client sent; locally wrangler's proxy sets it but keeps a client's (docs/auth.md).
    return c.json(await users.login(c.env, email, password, clientOf(c.req.header('cf-connecting-ip'))), 201);
  },
);

usersRouter.openapi(
  createRoute({ method: 'post', path: '/tokens/refresh', operationId: 'refreshTokens', tags, summary: 'Trade a refresh token for new tokens (rotates it; a used one given again revokes its whole session)', request: jsonBody(Refresh), responses: { 201: jsonResponse(Tokens, 'Issued'), ...errors(400, 401, 415, 422) } }),
  async (c) => c.json(await users.refresh(c.env, c.req.valid('json').refresh_token), 201),
);

usersRouter.openapi(
  createRoute({ method: 'post', path: '/tokens/revoke', operationId: 'logout', tags, summary: 'Log out: revoke the session of a refresh token (every token of its family)', request: jsonBody(Refresh), responses: { 204: { description: 'Revoked (or was not valid)' }, ...errors(400, 415, 422) } }),
  async (c) => {
    await users.revokeRefresh(c.env.DB, c.req.valid('json').refresh_token);
    return c.body(null, 204);
  },
);


usersRouter.openapi(
  createRoute({ method: 'get', path: '/users/me', operationId: 'getMe', tags, security: USER_ONLY, summary: 'My profile', responses: { 200: jsonResponse(User.extend({ orgs: z.array(z.object({ id: z.string(), name: z.string(), role: z.string() })) }), 'Profile'), ...errors(401, 403) } }),
  async (c) => {
    const id = requireUser(c);
    const u = await c.env.DB.prepare('SELECT id, email, created_at FROM users WHERE id = ?').bind(id).first<users.UserRow>();
    if (!u) throw notFound('user');
    const { results } = await c.env.DB.prepare('SELECT o.id, o.name, m.role FROM members m JOIN orgs o ON o.id = m.org_id WHERE m.user_id = ? ORDER BY o.created_at, o.id')
      .bind(id)
      .all<{ id: string; name: string; role: string }>();
    return c.json({ ...users.publicUser(u), orgs: results }, 200);
  },
);

usersRouter.openapi(
  createRoute({ method: 'patch', path: '/users/me/password', operationId: 'changePassword', tags, security: USER_ONLY, summary: 'Change my password (ends other sessions)', request: jsonBody(PasswordChange), responses: { 204: { description: 'Changed' }, ...errors(400, 401, 403, 415, 422) } }),
  async (c) => {
    const { old_password, new_password } = c.req.valid('json');
    await users.changePassword(c.env.DB, requireUser(c), old_password, new_password);
    return c.body(null, 204);
  },
);
