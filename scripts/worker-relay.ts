/**
 * Under `npm start`, between wrangler's proxy (the public port) and the worker: an HTTP relay whose
 * only job is to keep the proxy's idle keep-alive connections open for as long as the proxy wants them.
 *
 * Why: wrangler's proxy workerd forwards every request to the worker over pooled keep-alive
 * connections. Both ends are workerd, with kj's fixed timeouts: the client drops a connection idle for
 * 5 s, and the worker's server closes a connection idle for 5 s. When the two coincide, the proxy sends
 * a request on a connection the worker is closing; the request fails with a network error, and
 * wrangler 4.86's proxy worker reports it as "Your worker restarted mid-request" (HTTP 503) for a POST
 * (a GET it parks, see dev-worker.ts) although nothing restarted. A burst of POSTs ~4.9 s after the
 * previous burst hit it in a few rounds of every sweep, and a steady stream of POSTs hits it whenever
 * a spare pooled connection reaches 5 s of idleness (workers-sdk issue 14641; workerd's timeout is not
 * configurable). The rule for a keep-alive hop is that the server waits longer than the client:
 *   - towards the proxy this relay never closes an idle connection (the proxy closes it after 5 s);
 *   - towards the worker it drops its own idle connections after IDLE_MS, well before the worker's 5 s.
 * A request that fails towards the worker (the worker reloading) has its connection to the proxy cut,
 * so the proxy sees the same network error as without the relay.
 */
import { Agent, createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect } from 'node:net';

/** How long a connection to the worker may sit idle before this relay closes it (the worker waits 5 s). */
export const IDLE_MS = 2000;

/** Hop-by-hop headers: they describe the connection they came on, not the request. */
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'expect']);

/** `raw` (Node's rawHeaders: name, value, name, value…) without the hop-by-hop ones, or with `keep` kept. */
function endToEnd(raw: string[], keep: string[] = []): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (!HOP.has(name) || keep.includes(name)) out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

export interface WorkerRelay {
  /** Where wrangler's proxy should send the worker's requests. */
  origin: { protocol: string; hostname: string; port: string };
  /** The address and port the relay's socket is bound to, as the system reports it. */
  bound: { address: string; port: number };
  close: () => Promise<void>;
}

/** The response header of `/health` answers through this relay that says whose they are (`launch`). */
export const LAUNCH_HEADER = 'x-edgeflux-launch';

/**
 * Listens on `hostname` (a free port) and relays every request and WebSocket upgrade to `target()`,
 * the worker's current origin (it moves when the worker reloads). No target: the connection is cut.
 * `launch`: a value the launcher chose, set on every `/health` answer as LAUNCH_HEADER, so the
 * launcher knows the health check reached its own worker through its own proxy — not whatever else
 * took the public port after its check that the port was free (wrangler's proxy says nothing when it
 * cannot listen).
 */
export async function startWorkerRelay(target: () => URL | undefined, hostname = '127.0.0.1', launch?: string): Promise<WorkerRelay> {
  // Idle sockets towards the worker are closed after IDLE_MS; a socket in use is not timed.
  const agent = new Agent({ keepAlive: true, timeout: IDLE_MS, scheduling: 'lifo' });
  // keepAliveTimeout 0: an idle connection from the proxy stays open until the proxy closes it.
  const relay = (req: IncomingMessage, res: ServerResponse) => {
    const to = target();
    if (!to) return void res.destroy();
    const up = request({ hostname: to.hostname, port: to.port, method: req.method, path: req.url, headers: endToEnd(req.rawHeaders), agent, setHost: false });
    up.on('response', (answer: IncomingMessage) => {
      const headers = endToEnd(answer.rawHeaders);
      if (launch && req.url === '/health') headers.push(LAUNCH_HEADER, launch);
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, headers);
      answer.pipe(res);
      answer.on('error', () => res.destroy());
    });
    // The worker went away under the request (a reload): the proxy must see a failure, not an answer.
    up.on('error', () => res.destroy());
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    req.pipe(up);
  };
  const server = createServer({ keepAliveTimeout: 0, requestTimeout: 0 }, relay);
  // A request with `Expect: 100-continue` (curl's for a body over 1 MiB; .NET's, PowerShell's, old
  // libcurl's for any body) is relayed without the interim 100 Continue Node would send first:
  // wrangler's proxy takes a 1xx for the final answer and failed every such POST as 503 "Your
  // worker restarted mid-request" (workers-sdk#7185). The proxy sends the body regardless, and the
  // worker's own answer (202, 413…) follows; RFC 9110 §10.1.1 lets a server skip the 100.
  server.on('checkContinue', relay);
  server.on('upgrade', (req: IncomingMessage, socket, head: Buffer) => {
    const to = target();
    if (!to) return void socket.destroy();
    const up = connect({ host: to.hostname, port: Number(to.port), noDelay: true }, () => {
      const headers = endToEnd(req.rawHeaders, ['connection', 'upgrade']);
      let lines = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < headers.length; i += 2) lines += `${headers[i]}: ${headers[i + 1]}\r\n`;
      up.write(`${lines}\r\n`);
      if (head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    const cut = () => {
      up.destroy();
      socket.destroy();
    };
    up.on('error', cut).on('close', cut);
    socket.on('error', cut).on('close', cut);
  });
  await new Promise<void>((ok, fail) => server.once('error', fail).listen(0, hostname, () => ok()));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('the worker relay has no port');
  return {
    origin: { protocol: 'http:', hostname, port: String(address.port) },
    bound: { address: address.address, port: address.port },
    close: () =>
      new Promise<void>((ok) => {
        agent.destroy();
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}
