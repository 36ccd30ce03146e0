import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { resolve } from 'node:path';

export const root = resolve(import.meta.dirname, '../..');

/** A TCP port nobody is listening on right now (127.0.0.1). */
export function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.unref();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => (typeof addr === 'object' && addr ? ok(addr.port) : fail(new Error('no port'))));
    });
  });
}

export interface Platform {
  url: string;
  output: () => string;
  stop: () => Promise<void>;
}

/** Runs `npm start`'s launcher as a real process group and waits until it prints EDGEFLUX_READY. */
export async function startPlatform(env: Record<string, string>, timeoutMs = 90_000): Promise<Platform> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'scripts/start.ts'], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // own process group, so stop() reaches wrangler and workerd too
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const stop = async () => {
    if (child.exitCode !== null || child.pid === undefined) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
    const timer = setTimeout(() => child.pid !== undefined && process.kill(-child.pid, 'SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  const url = await new Promise<string>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`platform not ready in ${timeoutMs}ms:\n${out}`)), timeoutMs);
    const check = () => {
      const m = /EDGEFLUX_READY (\S+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        ok(m[1]);
      }
    };
    child.stdout?.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`launcher exited with ${code}:\n${out}`));
    });
  }).catch(async (e: unknown) => {
    await stop();
    throw e;
  });
  return { url, output: () => out, stop };
}
