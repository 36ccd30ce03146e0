/**
 * docs/sdk.md against the SDK: every `ts`/`typescript` example typechecks (the TypeScript compiler,
 * with the SDK's own tsconfig), every method of the SDK is named in the guide, and every `ef.…` /
 * `acme.…` the guide's code (examples and backtick spans, not prose) names exists. A guessed call
 * shape (`ef.orgs.create({ name })`, where a string is taken) fails the first.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { Edgeflux } from '../../sdk';
import { root } from './processes';

const guide = readFileSync(join(root, 'docs/sdk.md'), 'utf8');

/** A guide's TypeScript examples: ```ts and ```typescript blocks, also with more on the fence line (```ts title=…). */
const FENCE = /^```(?:ts|typescript)\b[^\n]*\n([\s\S]*?)^```/gm;
const examplesIn = (md: string) => [...md.matchAll(FENCE)].map((m) => m[1]!);
const examples = examplesIn(guide);

/**
 * The SDK names (`ef.…`, `acme.…`) a guide uses: in its TypeScript blocks and its backtick spans,
 * not its prose (`a console at https://console.acme.example` names nothing).
 */
function namesIn(md: string): string[] {
  const spans = [...md.replace(/^```[\s\S]*?^```/gm, '').matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!);
  const code = [...examplesIn(md), ...spans].join('\n');
  return [...new Set([...code.matchAll(/(?<![\w.\/-])(ef|acme)((?:\.[A-Za-z]\w*)+)/g)].map((m) => m[0]))];
}

/** What the guide's examples may use without declaring it. */
const PRELUDE = `import { Edgeflux, EdgefluxError, payloadBytes } from ${JSON.stringify(join(root, 'sdk/index.ts'))};
declare const ef: Edgeflux;
declare const acme: ReturnType<Edgeflux['org']>;
declare const orgId: string, channel: string, channelId: string, deviceId: string, appId: string, keyId: string, policyId: string, userId: string, accessToken: string, refreshToken: string;
declare const seq: number;
declare function archive(m: unknown): void;
declare const out: { write(chunk: string): void };
void EdgefluxError, payloadBytes;
`;

const dir = mkdtempSync(join(tmpdir(), 'edgeflux-sdk-docs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The compiler's errors for these examples, each in its own function (imports of 'edgeflux' are the prelude's). */
function typeErrors(blocks: string[]): string[] {
  const file = join(dir, `examples-${blocks.length}.ts`);
  const body = blocks.map((b, i) => `async function example${i}() {\n${b.replace(/^import .* from 'edgeflux';.*$/gm, '')}\n}\nvoid example${i};\n`).join('\n');
  writeFileSync(file, PRELUDE + body);
  const config = ts.readConfigFile(join(root, 'sdk/tsconfig.json'), ts.sys.readFile);
  const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, join(root, 'sdk'));
  const program = ts.createProgram([file], { ...options, noEmit: true, noUnusedLocals: false, noUnusedParameters: false, allowImportingTsExtensions: true });
  return ts.getPreEmitDiagnostics(program, program.getSourceFile(file)).map((d) => {
    const where = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : null;
    const line = where ? (d.file!.text.split('\n')[where.line] ?? '').trim() : '';
    return `${ts.flattenDiagnosticMessageText(d.messageText, '\n')}\n    at: ${line}`;
  });
}

/** Every method of the SDK, as the guide writes it: `ef.login`, `ef.orgs.create`, `acme.devices.create`… */
function sdkMethods(): string[] {
  const ef = new Edgeflux({ url: 'http://127.0.0.1:9' });
  const acme = ef.org('o');
  const fns = (prefix: string, o: object) => Object.entries(o).filter(([, v]) => typeof v === 'function').map(([k]) => `${prefix}.${k}`);
  const own = Object.entries(Object.getOwnPropertyDescriptors(Edgeflux.prototype))
    .filter(([k, d]) => k !== 'constructor' && typeof d.value === 'function')
    .map(([k]) => `ef.${k}`);
  return [
    ...own,
    ...(['users', 'tokens', 'orgs'] as const).flatMap((g) => fns(`ef.${g}`, ef[g])),
    ...fns('acme', acme),
    ...Object.entries(acme)
      .filter(([, v]) => typeof v === 'object' && v !== null)
      .flatMap(([g, v]) => fns(`acme.${g}`, v as object)),
  ];
}

describe('docs/sdk.md', () => {
  it('has examples, and the check catches a wrong call shape', () => {
    expect(examples.length).toBeGreaterThan(3);
    expect(typeErrors([`await ef.orgs.create({ name: 'acme' });`]).join('\n')).toMatch(/not assignable to parameter of type 'string'/);
    expect(typeErrors([`await acme.devices.create('thermo-1');`]).join('\n')).toMatch(/not assignable/);
  });

  it('reads ```typescript and ```ts title=… blocks as examples, and takes names from code, not prose', () => {
    expect(examplesIn('```typescript\nconst a = 1;\n```\n\n```ts title="b.ts"\nconst b = 2;\n```\n```sh\nx\n```\n')).toEqual(['const a = 1;\n', 'const b = 2;\n']);
    const md = 'A console at https://console.acme.example shows `acme.devices.list()`.\n\n```ts\nawait ef.orgs.list();\n```\n\n```sh\ncurl https://ef.example/x\n```\n';
    expect(namesIn(md)).toEqual(['ef.orgs.list', 'acme.devices.list']);
  });

  it('typechecks every ts example against the SDK', () => {
    expect(typeErrors(examples)).toEqual([]);
  }, 60_000);

  it('names every method of the SDK as it is called, and names none it does not have', () => {
    const methods = sdkMethods();
    expect(methods.length).toBeGreaterThan(60);
    const missing = methods.filter((m) => !new RegExp(`${m.replace(/\./g, '\\.')}\\(`).test(guide));
    expect(missing, 'SDK methods the guide does not show called').toEqual([]);
    const ef = new Edgeflux({ url: 'http://127.0.0.1:9' }) as unknown as Record<string, unknown>;
    const scope: Record<string, unknown> = { ef, acme: (ef.org as (id: string) => unknown).call(ef, 'o') };
    const named = namesIn(guide);
    expect(named.length).toBeGreaterThan(60);
    const unknown = named.filter((n) => {
      const [head, ...path] = n.split('.');
      let at: unknown = scope[head!];
      for (const p of path) at = at !== null && (typeof at === 'object' || typeof at === 'function') ? (at as Record<string, unknown>)[p] : undefined;
      return at === undefined;
    });
    expect(unknown, 'named in the guide, not in the SDK').toEqual([]);
  });
});
