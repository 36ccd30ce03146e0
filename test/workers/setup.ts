import { applyD1Migrations } from 'cloudflare:test';
import { env } from 'cloudflare:workers';

// Real D1 in workerd, migrated exactly as `wrangler d1 migrations apply` would.
await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);
