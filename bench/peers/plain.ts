/**
 * The "bare Node" peer for the HTTP and WebSocket scenarios (Mosquitto and Aedes speak no HTTP):
 * `POST /channels/{id}/messages[/…]` answers 202 and sends the body to every WebSocket opened on
 * `/channels/{id}/messages…`. No auth, no order, no storage: what the same client harness sees
 * from a server that does almost nothing, so Edgeflux's figures have a ceiling beside them.
 * Prints `PEER_READY {"http":port}` when listening.
 */
import { createServer } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';

const channelOf = (url = '') => /^\/channels\/([^/?]+)/.exec(url)?.[1] ?? '';
const subscribers = new Map<string, Set<WebSocket>>();

const server = createServer((req, res) => {
  if (req.method !== 'POST') return void res.writeHead(404).end();
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    for (const ws of subscribers.get(channelOf(req.url)) ?? []) ws.send(body, { binary: false });
    res.writeHead(202, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
});
const wss = new WebSocketServer({ server });
wss.on('connection', (ws, req) => {
  const ch = channelOf(req.url);
  const set = subscribers.get(ch) ?? new Set();
  subscribers.set(ch, set.add(ws));
  ws.on('close', () => set.delete(ws));
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  console.log(`PEER_READY ${JSON.stringify({ http: typeof addr === 'object' && addr ? addr.port : 0 })}`);
});
process.on('SIGTERM', () => process.exit(0));
