/**
 * `npm run types:check`: fails when worker-configuration.d.ts differs from what `npm run types`
 * generates now. (`wrangler types --check` ignores --env-file, so its answer depends on whether an
 * untracked .dev.vars happens to exist; this regenerates exactly as `npm run types` does.)
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const file = 'worker-configuration.d.ts';
const dir = mkdtempSync(join(tmpdir(), 'edgeflux-types-'));
try {
  for (const f of ['wrangler.toml', '.dev.vars.example', 'package.json', 'workers', 'objects', 'shared']) cpSync(join(root, f), join(dir, f), { recursive: true });
  const wrangler = createRequire(import.meta.url).resolve('wrangler/bin/wrangler.js');
  const r = spawnSync(process.execPath, [wrangler, 'types', '--env-file', '.dev.vars.example'], { cwd: dir, encoding: 'utf8', env: { ...process.env, WRANGLER_SEND_METRICS: 'false' } });
  if (r.status !== 0) {
    console.error(r.stdout + r.stderr);
    process.exit(1);
  }
  if (readFileSync(join(dir, file), 'utf8') !== readFileSync(join(root, file), 'utf8')) {
    console.error(`${file} is out of date: run \`npm run types\` and commit it.`);
    process.exit(1);
  }
  console.log(`${file} is up to date`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
