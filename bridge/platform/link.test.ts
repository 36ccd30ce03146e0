import { describe, expect, it } from 'vitest';
import { LINK_LIMITS, type BridgeOp } from '../../shared/link';
import { frames } from './link';

const pub = (id: number, bytes = 10): BridgeOp => ({ op: 'publish', id, subtopic: '', publisher: 'd', protocol: 'mqtt', contentType: 'text/plain', payload: new Uint8Array(bytes), retain: false });

describe('link frames', () => {
  it('keeps a small queue in one frame, in order', () => {
    const ops: BridgeOp[] = [{ op: 'subscribe', sub: 1, filter: '#' }, pub(1), pub(2), { op: 'consumed', seq: 3 }];
    expect(frames(ops)).toEqual([ops]);
  });

  it('starts a new frame at publishesPerFrame publishes, keeping every op once and in order', () => {
    const n = LINK_LIMITS.publishesPerFrame * 2 + 5;
    const ops = Array.from({ length: n }, (_, i) => pub(i));
    const out = frames(ops);
    expect(out.map((f) => f.length)).toEqual([LINK_LIMITS.publishesPerFrame, LINK_LIMITS.publishesPerFrame, 5]);
    expect(out.flat()).toEqual(ops);
  });

  it('starts a new frame before the payload bytes pass frameBytes; one oversized publish still goes alone', () => {
    const big = LINK_LIMITS.frameBytes / 2 + 1;
    const ops = [pub(1, big), pub(2, big), pub(3, LINK_LIMITS.frameBytes * 2), pub(4)];
    expect(frames(ops).map((f) => f.map((o) => (o.op === 'publish' ? o.id : -1)))).toEqual([[1], [2], [3], [4]]);
  });
});
