/**
 * `npm run docs:openapi`: writes docs/openapi.json from the app's own route definitions (the same
 * zod schemas that validate requests). A test fails when the committed file drifts from the code.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { buildApp } from '../workers/app';

const res = await buildApp().request('/openapi.json');
const doc = await res.json();
const out = resolve(import.meta.dirname, '../docs/openapi.json');
writeFileSync(out, `${JSON.stringify(doc, null, 2)}\n`);
console.log(`wrote ${out} (${Object.keys((doc as { paths: object }).paths).length} paths)`);
