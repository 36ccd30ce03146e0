import { cloudflareTest, readD1Migrations } from '@cloudflare/vitest-plugin';
import { defineConfig } from 'vitest/config';
import { buildConsole } from './scripts/console-build.ts';

const migrations = await readD1Migrations(new URL('./migrations', import.meta.url).pathname);
// The worker serves console/dist as static assets (wrangler.toml [assets]); it must exist before workerd starts.
await buildConsole();

// Two projects: `workers` runs inside workerd with real D1/R2/Durable Objects;
// `node` runs shared code, the bridge and process-level interop tests.
export default defineConfig({
  test: {
    projects: [
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: './wrangler.toml' },
            remoteBindings: false,
            miniflare: {
              bindings: {
                JWT_SECRET: 'test-jwt-secret-0123456789abcdef0123456789abcdef',
                BRIDGE_SECRET: 'test-bridge-secret-0123456789abcdef012345678',
                TEST_MIGRATIONS: migrations,
                // Session actors wait this long for a bridge to reattach (10 s in wrangler.toml).
                SESSION_REATTACH_MS: '100',
                // A failed channel purge is tried again this long after (5 s in wrangler.toml), doubling.
                PURGE_RETRY_MS: '50',
              },
            },
          }),
        ],
        test: {
          name: 'workers',
          include: ['test/workers/**/*.test.ts', 'workers/**/*.test.ts', 'objects/**/*.test.ts'],
          setupFiles: ['./test/workers/setup.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'node',
          environment: 'node',
          include: ['shared/**/*.test.ts', 'bridge/**/*.test.ts', 'console/**/*.test.ts', 'test/node/**/*.test.ts'],
          testTimeout: 30_000,
        },
      },
    ],
  },
});
