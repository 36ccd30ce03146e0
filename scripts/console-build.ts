/**
 * Builds the web console (console/) into console/dist, which the worker serves as static assets
 * (wrangler.toml [assets]). Run by `npm start`, by the workers test project (vitest.config.ts), by
 * `npm run deploy`, and on its own with `npm run console:build` (which also prints the sizes).
 *
 * One ES module entry with code splitting: the chart library (uPlot) is a separate chunk, loaded only
 * by the channel views.
 */
import { build } from 'esbuild';
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
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

/** Replaces a file only when its content changed, atomically (write aside, then rename). */
function put(path: string, body: Uint8Array): void {
  try {
    if (readFileSync(path).equals(body)) return;
  } catch {
    /* not there yet */
  }
  mkdirSync(dirname(path), { recursive: true });
  const aside = `${path}.${process.pid}.tmp`;
  writeFileSync(aside, body);
  renameSync(aside, path);
}

/**
 * Several launchers (test files run in parallel) may build while another's wrangler dev serves the
 * directory, so files are never removed or half-written under a reader: unchanged files are left alone,
 * changed ones are renamed into place, and only files this build did not produce (old chunks) are removed.
 */
export async function buildConsole(): Promise<BuiltFile[]> {
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
    write: false,
    absWorkingDir: root,
  });
  const copied = ['index.html', '_headers'].map((name) => ({ path: join(consoleDist, name), body: readFileSync(join(root, 'console', name)) }));
  const files = [...result.outputFiles.map((f) => ({ path: f.path, body: f.contents })), ...copied];
  for (const f of files) put(f.path, f.body);
  const produced = new Set(files.map((f) => f.path));
  for (const f of filesUnder(consoleDist)) if (!produced.has(f) && !f.endsWith('.tmp')) rmSync(f, { force: true });
  return files.map((f) => ({ file: relative(consoleDist, f.path), bytes: f.body.length, gzip: gzipSync(f.body, { level: 9 }).length }));
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const files = await buildConsole();
  const kb = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
  for (const f of files) console.log(`  ${f.file.padEnd(32)} ${kb(f.bytes).padStart(10)}  gzip ${kb(f.gzip).padStart(9)}`);
  const sum = (pick: (f: BuiltFile) => number) => files.reduce((a, f) => a + pick(f), 0);
  console.log(`  ${'total'.padEnd(32)} ${kb(sum((f) => f.bytes)).padStart(10)}  gzip ${kb(sum((f) => f.gzip)).padStart(9)}`);
}
