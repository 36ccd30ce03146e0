import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { LINK_SUBPROTOCOL } from '../../shared/link';
import { api, newOrg, newUser, checkedFetch } from './helpers';

/**
 * permessage-deflate is refused on every WebSocket the worker answers (wrangler.toml:
 * `no_web_socket_compression`). Without the flag workerd compresses whenever the client offers it,
 * as browsers and `ws` always do: once per socket per message on the channel actor's one thread,
 * with a zlib context per socket (docs/performance.md). These requests cross a real hop into the
 * worker, where workerd negotiates; the offer is the one a browser sends.
 */
const offer = { upgrade: 'websocket', 'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits' };

async function upgrade(path: string, headers: Record<string, string>): Promise<{ res: Response; first: Promise<unknown> }> {
  const res = await checkedFetch(`http://edgeflux.test${path}`, { headers: { ...offer, ...headers } });
  const ws = res.webSocket;
  if (!ws) throw new Error(`no upgrade: ${res.status}`);
  const first = new Promise((resolve) => ws.addEventListener('message', (e) => resolve(typeof e.data === 'string' ? JSON.parse(e.data) : e.data), { once: true }));
  ws.accept();
  return { res, first };
}

describe('WebSocket compression', () => {
  it('is refused on subscriber sockets, refused upgrades and bridge sockets, though the client offers it', async () => {
    const u = await newUser();
    const org = await newOrg(u.token);
    const channel = (await api('POST', `/orgs/${org.id}/channels`, { token: u.token, body: { name: 'c' } })).body.id as string;

    const sub = await upgrade(`/channels/${channel}/messages`, { authorization: `Bearer ${u.token}` });
    expect(sub.res.status).toBe(101);
    expect(sub.res.headers.get('sec-websocket-extensions')).toBeNull();
    expect(await sub.first).toEqual({ type: 'subscribed', seq: 0 });

    const refused = await upgrade(`/channels/${channel}/messages`, {});
    expect(refused.res.headers.get('sec-websocket-extensions')).toBeNull();
    expect(await refused.first).toMatchObject({ type: 'error', status: 401 });

    const bridge = { authorization: `Bearer ${env.BRIDGE_SECRET}` };
    const link = await upgrade(`/internal/channels/${channel}/link`, { ...bridge, 'sec-websocket-protocol': LINK_SUBPROTOCOL });
    expect(link.res.status).toBe(101);
    expect(link.res.headers.get('sec-websocket-extensions')).toBeNull();
    const session = await upgrade(`/internal/sessions/${crypto.randomUUID()}`, bridge);
    expect(session.res.status).toBe(101);
    expect(session.res.headers.get('sec-websocket-extensions')).toBeNull();
  });
});
