#!/usr/bin/env node
// The `edgeflux` CLI: runs the build of cli/main.ts (`npm run build`, done by `npm ci` / `npm install`).
import { existsSync } from 'node:fs';

const built = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(built)) {
  process.stderr.write('edgeflux: dist/cli.js is missing; run `npm run build` in the edgeflux checkout\n');
  process.exit(1);
}
await import(built.href);
