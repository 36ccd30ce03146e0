/**
 * What the server processes cost, read from Linux /proc: CPU seconds (user + system, from
 * /proc/<pid>/stat) and resident memory (VmRSS from /proc/<pid>/status), sampled while a scenario
 * runs so the peak of the processes' summed RSS is seen. Off Linux every figure is NaN.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** USER_HZ: 100 on every Linux architecture Node runs on (sysconf(_SC_CLK_TCK)). */
const TICKS_PER_SECOND = 100;

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined; // the process is gone, or this is not Linux
  }
}

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses). */
function statFields(pid: number): string[] | undefined {
  const s = read(`/proc/${pid}/stat`);
  if (!s) return undefined;
  return s.slice(s.lastIndexOf(')') + 2).split(' ');
}

/** User + system CPU seconds the process has used so far (fields 14 and 15 of proc(5)). */
export function cpuSeconds(pid: number): number {
  const f = statFields(pid);
  return f ? (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND : NaN;
}

/** A `VmXxx:` line of /proc/<pid>/status, in KiB. */
export function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(read(`/proc/${pid}/status`) ?? '');
  return m ? Number(m[1]) : NaN;
}

export function commandLine(pid: number): string {
  return (read(`/proc/${pid}/cmdline`) ?? '').split('\0').join(' ');
}

/** Every live process in process group `pgid` (a detached child and all it started). */
export function processGroup(pgid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  return entries
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((pid) => Number(statFields(pid)?.[2]) === pgid);
}

/** Whether any process of group `pgid` still runs; zombies (exited, awaiting their reaper) do not count. */
export function groupRunning(pgid: number): boolean {
  return processGroup(pgid).some((pid) => {
    const state = statFields(pid)?.[0];
    return state !== undefined && state !== 'Z';
  });
}

export interface Usage {
  /** CPU seconds used by the watched processes during the watch. */
  cpuSeconds: number;
  /** Highest sum of the processes' RSS seen while watching, MiB. */
  peakRssMiB: number;
  /** Sum of RSS at the end, MiB. */
  rssMiB: number;
  /** CPU seconds by process kind (workerd, bridge, wrangler, …). */
  cpuBy: Record<string, number>;
  /**
   * The longest the harness's own event loop was held up during the watch, ms: a message sent or
   * received then waits that long whatever the server does, so a latency tail no longer than this
   * may be the harness's (or the machine's), not the server's.
   */
  harnessStallMs: number;
  /**
   * The harness's own CPU during the watch, % of one core (user+system of this Node process). Near
   * 100 %, the harness (one thread) is the limit: the figure is the harness's, not the server's.
   */
  harnessCpuPct: number;
}

/** A short name for a process: what it is, not its pid. */
export function processKind(pid: number): string {
  const cmd = commandLine(pid);
  for (const [kind, re] of [['workerd', /workerd.*--socket-addr=entry=[^ ]*:0 /], ["wrangler's proxy workerd", /workerd/], ['bridge', /bridge\/main/], ['launcher', /scripts\/start/], ['wrangler', /wrangler|dev-worker/], ['esbuild', /esbuild/]] as const) if (re.test(cmd)) return kind;
  return cmd.split(' ')[0]?.split('/').at(-1) || String(pid);
}

/** Watches a set of processes from start() to stop(): CPU used and the peak of summed RSS. */
export class ProcWatch {
  private cpu0 = new Map<number, number>();
  private kinds = new Map<number, string>();
  private peak = 0;
  private timer?: NodeJS.Timeout;
  private readonly stall = monitorEventLoopDelay({ resolution: 1 });
  private ownCpu0 = process.cpuUsage();
  private wall0 = 0;

  constructor(private readonly pids: number[]) {}

  private rssKiB(): number {
    return this.pids.reduce((s, p) => s + (statusKiB(p, 'VmRSS') || 0), 0);
  }

  start(sampleMs = 100): this {
    for (const p of this.pids) this.cpu0.set(p, cpuSeconds(p)), this.kinds.set(p, processKind(p));
    this.peak = this.rssKiB();
    this.timer = setInterval(() => (this.peak = Math.max(this.peak, this.rssKiB())), sampleMs);
    this.stall.enable();
    this.ownCpu0 = process.cpuUsage();
    this.wall0 = performance.now();
    return this;
  }

  stop(): Usage {
    clearInterval(this.timer);
    this.stall.disable();
    // The histogram holds the delay beyond the 1 ms resolution, in ns.
    const harnessStallMs = this.stall.count ? this.stall.max / 1e6 : 0;
    const own = process.cpuUsage(this.ownCpu0);
    const harnessCpuPct = ((own.user + own.system) / 1e3 / Math.max(1, performance.now() - this.wall0)) * 100;
    const rss = this.rssKiB();
    this.peak = Math.max(this.peak, rss);
    let cpu = 0;
    const cpuBy: Record<string, number> = {};
    for (const [p, c0] of this.cpu0) {
      const used = cpuSeconds(p) - c0;
      if (Number.isNaN(used)) continue; // exited meanwhile
      cpu += used;
      const kind = this.kinds.get(p)!;
      cpuBy[kind] = (cpuBy[kind] ?? 0) + used;
    }
    return { cpuSeconds: this.pids.length ? cpu : NaN, peakRssMiB: this.pids.length ? this.peak / 1024 : NaN, rssMiB: this.pids.length ? rss / 1024 : NaN, cpuBy, harnessStallMs, harnessCpuPct };
  }
}

/**
 * A full garbage collection in a Node process, through its inspector (SIGUSR1 opens it on
 * 127.0.0.1:9229): memory "per idle connection" should be what connections hold, not garbage
 * the connect path left that V8 has had no reason to collect yet. Returns false (and does
 * nothing) for a process that is not Node, or when the inspector found is not that process's.
 */
export async function collectGarbage(pid: number): Promise<boolean> {
  const cmd = commandLine(pid);
  if (!/\bnode\b|\btsx\b/.test(cmd)) return false;
  const script = cmd.split(' ').find((a) => /\.(ts|js|mjs)$/.test(a) && !a.includes('node_modules'));
  process.kill(pid, 'SIGUSR1');
  let target: { webSocketDebuggerUrl: string; url: string } | undefined;
  for (let i = 0; i < 20 && !target; i++) {
    await new Promise((r) => setTimeout(r, 100));
    try {
      const list = (await (await fetch('http://127.0.0.1:9229/json')).json()) as { webSocketDebuggerUrl: string; url: string }[];
      target = list.find((t) => script && t.url.endsWith(script.replace(/^.*\//, '')));
    } catch {
      /* not listening yet */
    }
  }
  if (!target) return false;
  const { default: WebSocket } = await import('ws');
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((ok, fail) => (ws.once('open', ok), ws.once('error', fail)));
  let id = 0;
  const call = (method: string) =>
    new Promise<void>((ok) => {
      const my = ++id;
      const on = (d: Buffer) => {
        if ((JSON.parse(d.toString()) as { id?: number }).id === my) (ws.off('message', on), ok());
      };
      ws.on('message', on);
      ws.send(JSON.stringify({ id: my, method }));
    });
  await call('HeapProfiler.collectGarbage');
  await call('HeapProfiler.collectGarbage');
  // Close the inspector again, so the next server's SIGUSR1 can have port 9229.
  const closed = new Promise((r) => ws.once('close', r));
  ws.send(JSON.stringify({ id: ++id, method: 'Runtime.evaluate', params: { expression: 'process._debugEnd()' } }));
  await Promise.race([closed, new Promise((r) => setTimeout(r, 1000))]);
  ws.terminate();
  return true;
}
