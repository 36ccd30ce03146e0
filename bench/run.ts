/**
 * `npm run bench [-- --quick] [--only fanin,paced,fanout,channels,http,ws,idle,codecs] [--runs N] …`
 * Starts Edgeflux, Mosquitto, Aedes and a bare Node peer; runs the scenarios; prints Markdown tables
 * and writes bench/results/<quick|full>-<time>.json. `--help` lists every flag. See docs/performance.md.
 */
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { codecScenarios } from './codecs';
import { machine, progress, table, writeResults } from './harness';
import { describeCheck, machineCheck, type MachineCheck } from './machine-check';
import { runScenarios, SCENARIOS, type Outcome, type Settings } from './scenarios';
import { BENCH_CHANNEL_LIMITS, BENCH_MQTT_LIMITS, startAedes, startEdgeflux, startMosquitto, startPlainNode, type Server } from './servers';

const flags = {
  quick: { type: 'boolean', default: false, help: 'short run (< 2 min): small sizes, short runs' },
  only: { type: 'string', help: `comma-separated scenarios: ${[...SCENARIOS, 'codecs'].join(',')} (default all)` },
  runs: { type: 'string', help: 'runs per figure (the median is reported); quick 1, full 3' },
  seconds: { type: 'string', help: 'seconds each server is loaded per run; quick 1, full 4' },
  ms: { type: 'string', help: 'codec microbenchmark: ms per run; quick 100, full 500' },
  publishers: { type: 'string', help: 'fan-in publishers (10)' },
  rate: { type: 'string', help: 'fan-in paced rate for latency, msgs/s (1000)' },
  fanout: { type: 'string', help: 'fan-out subscriber counts; quick 1,100; full 1,100,1000' },
  'fanout-rate': { type: 'string', help: 'fan-out deliveries/s offered (quick 5000, full 20000)' },
  channels: { type: 'string', help: 'many-channels count; quick 100, full 1000' },
  'http-clients': { type: 'string', help: 'keep-alive HTTP publishers (16)' },
  sockets: { type: 'string', help: 'WebSocket fan-out sockets; quick 100, full 1000' },
  'socket-rate': { type: 'string', help: 'WebSocket deliveries/s offered (quick 5000, full 20000)' },
  idle: { type: 'string', help: 'idle MQTT connections; quick 500, full 2000' },
  'state-dir': { type: 'string', help: "where Edgeflux's local state (D1, R2, actors' SQLite) lives: default the OS temp directory; e.g. /dev/shm (tmpfs), since the peers keep everything in memory" },
  profile: { type: 'boolean', default: false, help: 'write a V8 CPU profile of the bridge under bench/results/profile-<time>/' },
  help: { type: 'boolean', default: false, help: 'this list' },
} as const;

const { values: v } = parseArgs({ options: Object.fromEntries(Object.entries(flags).map(([k, f]) => [k, { type: f.type, ...('default' in f ? { default: f.default } : {}) }])) as { [K in keyof typeof flags]: { type: (typeof flags)[K]['type'] } } });
if (v.help) {
  console.log(Object.entries(flags).map(([k, f]) => `  --${k.padEnd(14)} ${f.help}`).join('\n'));
  process.exit(0);
}
const quick = Boolean(v.quick);
const num = (x: unknown, quickDefault: number, fullDefault: number) => (typeof x === 'string' ? Number(x) : quick ? quickDefault : fullDefault);
const list = (x: unknown, dflt: number[]) => (typeof x === 'string' ? x.split(',').map(Number) : dflt);
const settings: Settings & { ms: number } = {
  runs: num(v.runs, 1, 3),
  seconds: num(v.seconds, 1, 4),
  ms: num(v.ms, 100, 500),
  publishers: num(v.publishers, 10, 10),
  rate: num(v.rate, 1000, 1000),
  fanout: list(v.fanout, quick ? [1, 100] : [1, 100, 1000]),
  fanoutRate: num(v['fanout-rate'], 5000, 20000),
  channels: num(v.channels, 100, 1000),
  httpClients: num(v['http-clients'], 16, 16),
  sockets: num(v.sockets, 100, 1000),
  socketRate: num(v['socket-rate'], 5000, 20000),
  idle: num(v.idle, 500, 2000),
  settleMs: quick ? 1000 : 2000,
  storageWaitMs: quick ? 15_000 : 30_000,
};
const stateDir = typeof v['state-dir'] === 'string' ? resolve(v['state-dir']) : tmpdir();
const only = new Set(typeof v.only === 'string' ? v.only.split(',') : [...SCENARIOS, 'codecs']);
const unknown = [...only].filter((s) => s !== 'codecs' && !(SCENARIOS as readonly string[]).includes(s));
if (unknown.length) throw new Error(`--only: unknown scenario(s) ${unknown.join(', ')}`);

const began = Date.now();
const out: Outcome = { rows: [], storage: [], notes: [] };
const checks: { start: MachineCheck; end?: MachineCheck } = { start: machineCheck(stateDir) };
const servers: Server[] = [];
let edgeflux: Server | undefined;
let stopping = false;

/** What storing every message cost on disk: known once Edgeflux has stopped. */
function footprintNote(): string[] {
  const f = edgeflux?.storage?.footprint();
  if (!f || f.messages === 0) return [];
  const mib = (f.bytes / 2 ** 20).toFixed(1);
  return [`D1 after the run: ${f.messages} stored messages in ${mib} MiB of database file: ~${Math.round(f.bytes / f.messages)} bytes per message (its row, its SenML records and their indexes; the schema and the provisioned devices and channels, well under 1 MiB, are counted in too)`];
}

async function stopServers(): Promise<void> {
  for (const s of servers.splice(0).reverse()) await s.stop();
}

function report(interrupted = false): void {
  checks.end ??= machineCheck(stateDir);
  const method = [
    `Each figure is the median of ${settings.runs} runs of ${settings.seconds} s; the servers are loaded one after the other by the same client harness in this one Node process, each server's runs on one set of connected, warmed-up clients.`,
    'Latency: sender clock written into the SenML payload, read back by the subscriber, recorded in an HDR histogram (µs, 3 digits).',
    'CPU: user+system seconds of the server processes during the run (/proc/<pid>/stat); Edgeflux = its whole process group (launcher, wrangler, workerd, bridge). Peak RSS: highest sampled sum of VmRSS (100 ms).',
    `Machine: ${machine()}.`,
    `Edgeflux's local state (D1, R2, every Durable Object's SQLite, each commit an fsync on workerd's thread) in ${stateDir}${stateDir === tmpdir() ? ' (the OS temp directory)' : ''}; Mosquitto keeps nothing on disk, Aedes is in memory.`,
    `Machine check (the same probe every run; compare runs only when these agree): at the start ${describeCheck(checks.start)}${checks.end ? `; at the end ${describeCheck(checks.end)}` : ''}.`,
  ].join(' ');
  out.notes.push(...footprintNote());
  const first = [...(interrupted ? ['**INTERRUPTED**: the scenarios below are the ones that finished'] : []), ...out.storage];
  const text = [
    `# Edgeflux benchmarks${quick ? ' (quick)' : ''}`,
    '',
    ...first.map((s) => `- ${s}`),
    ...(first.length ? [''] : []),
    method,
    '',
    ...out.notes.map((n) => `- ${n}`),
    '',
    table(out.rows),
    '',
    `took ${((Date.now() - began) / 1000).toFixed(0)} s`,
  ].join('\n');
  console.log(text);
  console.log(`\nresults: ${writeResults(quick ? 'quick' : 'full', { rows: out.rows, notes: [...first, ...out.notes], method, settings: { quick, only: [...only], stateDir, ...settings }, machineCheck: checks, d1: edgeflux?.storage?.footprint() ?? null })}`);
}

// Ctrl-C: stop every server this run started (Edgeflux is a process group of its own) and report what finished.
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.once(sig, () => {
    if (stopping) return;
    stopping = true;
    void stopServers().finally(() => (report(true), process.exit(130)));
  });

if ([...only].some((s) => s !== 'codecs')) {
  try {
    progress('starting Edgeflux, Mosquitto, Aedes, bare Node');
    const profileDir = v.profile ? resolve(import.meta.dirname, 'results', `profile-${new Date().toISOString().replace(/[:.]/g, '-')}`) : undefined;
    edgeflux = await startEdgeflux({ devices: Math.max(settings.publishers + 1, 20), profileDir, stateDir });
    servers.push(edgeflux);
    if (profileDir) out.notes.push(`CPU profile of the bridge (written when it exits): ${profileDir}`);
    servers.push(await startMosquitto(), await startAedes(), await startPlainNode());
    out.notes.push(`Edgeflux limits raised for the benchmark: EDGEFLUX_MQTT_LIMITS=${JSON.stringify(BENCH_MQTT_LIMITS)}; every channel PATCH /limits ${JSON.stringify(BENCH_CHANNEL_LIMITS)}`);
    await runScenarios(servers, only, settings, out);
  } finally {
    if (!stopping) await stopServers();
  }
}
if (only.has('codecs') && !stopping) {
  progress('7 codecs');
  out.rows.push(...codecScenarios({ ms: settings.ms, runs: settings.runs }));
}
if (!stopping) report();
