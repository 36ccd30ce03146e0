// Preloaded (node --import) into a bridge by bridge-bundle.test.ts: a SIGTERM — a real signal —
// arrives while the bridge's listeners are still opening, every time. The first TCP server (MQTT,
// after CoAP) starts listening only once the process has sent itself SIGTERM and handled it; and a
// UDP socket takes 300 ms to close, as CoAP's close() can while its last 5.03s are on their way
// (up to 2 s), so the listeners still opening have time to finish before the process exits.
import dgram from 'node:dgram';
import net from 'node:net';

const listen = net.Server.prototype.listen;
let calls = 0;
let signalled;
const handled = new Promise((r) => (signalled = r));
process.on('SIGTERM', () => setImmediate(signalled));
net.Server.prototype.listen = function (...args) {
  if (++calls === 1) {
    process.kill(process.pid, 'SIGTERM');
    void handled.then(() => listen.apply(this, args));
    return this;
  }
  return listen.apply(this, args);
};

const close = dgram.Socket.prototype.close;
dgram.Socket.prototype.close = function (cb) {
  setTimeout(() => close.call(this, cb), 300);
  return this;
};
