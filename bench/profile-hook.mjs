// `npm run bench -- --profile`: loaded into the platform's Node processes with NODE_OPTIONS=--import
// (Node 20 refuses --cpu-prof there). In the bridge only, it runs the V8 CPU profiler from start to
// exit and writes BENCH_PROFILE_DIR/bridge-<pid>.cpuprofile (open it in Chrome DevTools → Performance).
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

const dir = process.env.BENCH_PROFILE_DIR;
if (dir && process.argv.some((a) => /bridge[\\/]main\.ts$/.test(a))) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 100 });
  session.post('Profiler.start');
  // A same-thread session answers synchronously, so this works inside the 'exit' event.
  process.on('exit', () =>
    session.post('Profiler.stop', (err, res) => {
      if (err) return;
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `bridge-${process.pid}.cpuprofile`), JSON.stringify(res.profile));
    }),
  );
}
