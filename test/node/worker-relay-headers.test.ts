import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { startWorkerRelay } from '../../scripts/worker-relay';

/**
 * `npm start`'s relay (scripts/worker-relay.ts) in front of a stand-in worker that echoes what it
 * got: an address header a client set itself (Cloudflare's edge would have overwritten it) never
 * reaches the worker, whose log-in throttle keys on it.
 */
describe('worker relay', () => {
  it('drops CF-Connecting-IP (and True-Client-IP, X-Real-IP) a client sent, and keeps the rest', async () => {
    let seen: IncomingHttpHeaders = {};
    const worker = createServer((req, res) => ((seen = req.headers), res.end('ok')));
    await new Promise<void>((ok) => worker.listen(0, '127.0.0.1', ok));
    const relay = await startWorkerRelay(() => new URL(`http://127.0.0.1:${(worker.address() as AddressInfo).port}`));
    try {
      const res = await fetch(`http://127.0.0.1:${relay.bound.port}/tokens`, { method: 'POST', headers: { 'cf-connecting-ip': '10.9.9.9', 'true-client-ip': '10.9.9.8', 'x-real-ip': '10.9.9.7', 'x-custom': 'kept' }, body: '{}' });
      expect(await res.text()).toBe('ok');
      expect(seen['cf-connecting-ip']).toBeUndefined();
      expect(seen['true-client-ip']).toBeUndefined();
      expect(seen['x-real-ip']).toBeUndefined();
      expect(seen['x-custom']).toBe('kept');
    } finally {
      await relay.close();
      worker.close();
    }
  });
});
