import { z } from '@hono/zod-openapi';

export const Email = z.email().max(254).transform((e) => e.toLowerCase()).openapi({ example: 'ada@example.com' });
export const Password = z.string().min(8, 'password must be at least 8 characters').max(256).openapi({ example: 'correct horse battery' });

export const User = z.object({ id: z.string(), email: z.string(), created_at: z.number().int() }).openapi('User');
export const Credentials = z.strictObject({ email: Email, password: Password }).openapi('Credentials');
export const Login = z.strictObject({ email: Email, password: z.string().min(1).max(256) }).openapi('Login');
export const Tokens = z
  .object({
    access_token: z.string(),
    refresh_token: z.string(),
    token_type: z.literal('Bearer'),
    expires_in: z.number().int().openapi({ description: 'Seconds until the access token expires' }),
  })
  .openapi('Tokens');
export const Refresh = z.strictObject({ refresh_token: z.string().min(1) }).openapi('RefreshRequest');
export const PasswordChange = z.strictObject({ old_password: z.string().min(1), new_password: Password }).openapi('PasswordChange');
