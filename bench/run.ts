/**
 * `npm run bench [-- --quick] [--only codecs,…] [--ms N] [--runs N]`
 * Prints one Markdown table and writes bench/results/<name>-<time>.json. How it was run is printed
 * with the results. See docs/performance.md.
 */
import { parseArgs } from 'node:util';
import { codecScenarios } from './codecs';
import { mqttFanInScenarios } from './mqtt-fanin';
import { machine, table, writeResults, type Row } from './harness';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    ms: { type: 'string' },
    runs: { type: 'string' },
    seconds: { type: 'string' },
    publishers: { type: 'string' },
  },
});
const quick = values.quick ?? false;
const ms = Number(values.ms ?? (quick ? 150 : 1000));
const runs = Number(values.runs ?? (quick ? 3 : 5));
const only = new Set((values.only ?? 'codecs,mqtt').split(','));

const rows: Row[] = [];
const notes: string[] = [];
if (only.has('codecs')) rows.push(...codecScenarios({ ms, runs }));
if (only.has('mqtt')) {
  const r = await mqttFanInScenarios({ seconds: Number(values.seconds ?? (quick ? 3 : 10)), runs: quick ? 1 : 3, publishers: Number(values.publishers ?? 10) });
  rows.push(...r.rows);
  notes.push(...r.notes);
}

const method = `median of ${runs} runs × ${ms} ms each after a warm-up, one process, one core; ${machine()}`;
console.log(`# Edgeflux benchmarks${quick ? ' (quick)' : ''}\n\n${method}\n\n${notes.map((n) => `- ${n}`).join('\n')}\n\n${table(rows)}\n`);
console.log(`results: ${writeResults(quick ? 'quick' : 'full', rows, method)}`);
