import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { connect } from 'node:net';
import { freePort } from './processes';

/** One request the proxy passed on: when, where, and for /internal/authorize how many questions it carried. */
export interface Seen {
  path: string;
  /** ms (Date.now()) when it arrived, and when its answer was sent back. */
  at: number;
  answeredAt?: number;
  /** /internal/authorize: items in a batch, 1 for the single form. */
  items?: number;
  status?: number;
}

/**
 * A transparent HTTP proxy in front of a worker, for watching what a real bridge asks of it:
 * requests are passed on unchanged (WebSocket upgrades as raw bytes, both ways) and recorded.
 */
export async function countingProxy(target: string): Promise<{ url: string; seen: Seen[]; close: () => Promise<void> }> {
  const to = new URL(target);
  const seen: Seen[] = [];
  const tunnels = new Set<{ destroy(): void }>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const entry: Seen = { path: req.url ?? '', at: Date.now() };
      if (entry.path === '/internal/authorize') {
        try {
          const parsed = JSON.parse(body.toString()) as { items?: unknown[] };
          entry.items = Array.isArray(parsed.items) ? parsed.items.length : 1;
        } catch {
          /* passed on as it is: the worker answers it */
        }
      }
      seen.push(entry);
      const out = request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers }, (answer: IncomingMessage) => {
        entry.status = answer.statusCode;
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        answer.on('end', () => (entry.answeredAt = Date.now()));
      });
      out.on('error', () => res.destroy());
      out.end(body);
    });
  });
  server.on('upgrade', (req: IncomingMessage, socket, head: Buffer) => {
    seen.push({ path: req.url ?? '', at: Date.now() });
    const upstream = connect(Number(to.port), to.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    tunnels.add(socket).add(upstream);
    upstream.on('close', () => tunnels.delete(upstream));
    socket.on('close', () => tunnels.delete(socket));
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
  });
  const port = await freePort();
  await new Promise<void>((ok) => server.listen(port, '127.0.0.1', ok));
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((ok) => {
        for (const t of tunnels) t.destroy();
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}
