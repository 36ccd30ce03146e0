/**
 * `npx tsx bench/profile-top.ts <file.cpuprofile> [N]`: the N functions with the most self time in a
 * V8 CPU profile (as `npm run bench -- --profile` writes for the bridge), as a share of the busy time.
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

const [file, n = '25'] = process.argv.slice(2);
if (!file) throw new Error('usage: profile-top.ts <file.cpuprofile> [N]');
const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[]; samples: number[] };
const hits = new Map<number, number>();
for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
const self = new Map<string, number>();
for (const node of profile.nodes) {
  const f = node.callFrame;
  const where = f.url ? `${f.url.replace(/^.*?\/(node_modules\/|bridge\/|shared\/)/, '$1')}:${f.lineNumber + 1}` : '';
  const key = `${f.functionName || '(anonymous)'} ${where}`.trim();
  self.set(key, (self.get(key) ?? 0) + (hits.get(node.id) ?? 0));
}
const idle = self.get('(idle)') ?? 0;
self.delete('(idle)');
const total = profile.samples.length - idle;
const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(n));
console.log(`${total} busy samples (${idle} idle left out)\n| self % of busy | function |\n|---:|---|\n${rows.map(([k, v]) => `| ${((100 * v) / total).toFixed(1)} | \`${k}\` |`).join('\n')}`);
