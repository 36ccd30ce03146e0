/**
 * The Aedes peer: a plain in-memory Aedes broker (no persistence, no auth), alone in this process so
 * its CPU and RSS are its own. Prints `PEER_READY {"mqtt":port}` when listening.
 */
import { createServer } from 'node:net';
import { Aedes } from 'aedes';

const broker = await Aedes.createBroker();
const server = createServer(broker.handle);
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  console.log(`PEER_READY ${JSON.stringify({ mqtt: typeof addr === 'object' && addr ? addr.port : 0 })}`);
});
process.on('SIGTERM', () => server.close(() => broker.close(() => process.exit(0))));
