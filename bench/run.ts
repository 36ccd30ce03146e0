/**
 * `npm run bench [-- --quick] [--only codecs,…] [--ms N] [--runs N]`
 * Prints one Markdown table and writes bench/results/<name>-<time>.json. How it was run is printed
 * with the results. See docs/performance.md.
 */
import { parseArgs } from 'node:util';
import { codecScenarios } from './codecs';
import { machine, table, writeResults, type Row } from './harness';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    ms: { type: 'string' },
    runs: { type: 'string' },
  },
});
const quick = values.quick ?? false;
const ms = Number(values.ms ?? (quick ? 150 : 1000));
const runs = Number(values.runs ?? (quick ? 3 : 5));
const only = new Set((values.only ?? 'codecs').split(','));

const rows: Row[] = [];
if (only.has('codecs')) rows.push(...codecScenarios({ ms, runs }));

const method = `median of ${runs} runs × ${ms} ms each after a warm-up, one process, one core; ${machine()}`;
console.log(`# Edgeflux benchmarks${quick ? ' (quick)' : ''}\n\n${method}\n\n${table(rows)}\n`);
console.log(`results: ${writeResults(quick ? 'quick' : 'full', rows, method)}`);
