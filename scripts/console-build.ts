/**
 * Builds the web console (console/) into console/dist, which the worker serves as static assets
 * (wrangler.toml [assets]). Run by `npm start`, by the workers test project (vitest.config.ts), by
 * `npm run deploy`, and on its own with `npm run console:build` (which also prints the sizes).
 *
 * One ES module entry with code splitting: the chart library (uPlot) is a separate chunk, loaded only
 * by the channel views.
 */
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';

const root = resolve(import.meta.dirname, '..');
export const consoleDist = join(root, 'console/dist');

export interface BuiltFile {
  file: string;
  bytes: number;
  gzip: number;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

/**
 * Writes in place and then removes what this build did not write (old chunks): several launchers (test
 * files in parallel) may build while another's wrangler dev serves the directory, so it never disappears.
 */
export async function buildConsole(): Promise<BuiltFile[]> {
  mkdirSync(consoleDist, { recursive: true });
  const result = await build({
    entryPoints: { main: join(root, 'console/src/main.tsx') },
    outdir: join(consoleDist, 'assets'),
    bundle: true,
    splitting: true,
    format: 'esm',
    target: ['es2022', 'chrome111', 'firefox111', 'safari16'],
    minify: true,
    jsx: 'automatic',
    jsxImportSource: 'preact',
    chunkNames: '[name]-[hash]',
    legalComments: 'none',
    logLevel: 'warning',
    metafile: true,
    absWorkingDir: root,
  });
  copyFileSync(join(root, 'console/index.html'), join(consoleDist, 'index.html'));
  const written = new Set([...Object.keys(result.metafile.outputs).map((o) => resolve(root, o)), join(consoleDist, 'index.html')]);
  for (const f of filesUnder(consoleDist)) if (!written.has(f)) rmSync(f, { force: true });
  return filesUnder(consoleDist).map((p) => {
    const body = readFileSync(p);
    return { file: relative(consoleDist, p), bytes: body.length, gzip: gzipSync(body, { level: 9 }).length };
  });
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const files = await buildConsole();
  const kb = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
  for (const f of files) console.log(`  ${f.file.padEnd(32)} ${kb(f.bytes).padStart(10)}  gzip ${kb(f.gzip).padStart(9)}`);
  const sum = (pick: (f: BuiltFile) => number) => files.reduce((a, f) => a + pick(f), 0);
  console.log(`  ${'total'.padEnd(32)} ${kb(sum((f) => f.bytes)).padStart(10)}  gzip ${kb(sum((f) => f.gzip)).padStart(9)}`);
}
