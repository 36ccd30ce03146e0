import { describe, expect, it } from 'vitest';
import type { Principal } from '../../../shared/principal';
import type { Platform, PublishOutcome, PublishRequest } from '../../platform/types';
import { FakeClock, settle } from '../../testing/fake-clock';
import { Wills, type Will } from '../wills';

const principal: Principal = { kind: 'device', id: 'dev-1', orgId: 'org-1' };
const will = (payload: string): Will => ({ request: { channel: 'ch-1', subtopic: 'status', protocol: 'mqtt', contentType: 'text/plain', payload: new TextEncoder().encode(payload), retain: true, qos: 1 }, delay: 0 });
const UNAVAILABLE: PublishOutcome = { ok: false, status: 503, code: 'unavailable', message: 'link lost' };

/** A platform whose publish answers come from `answer` (503 by default); every attempt is recorded. */
function platform(answer: (req: PublishRequest) => Promise<PublishOutcome> = async () => UNAVAILABLE) {
  const attempts: string[] = [];
  const p = {
    authorize: async () => [{ allowed: true }],
    publish: (req: PublishRequest) => {
      attempts.push(new TextDecoder().decode(req.payload));
      return answer(req);
    },
  };
  return { platform: p as unknown as Platform, attempts };
}

describe('wills tried again after a 503', () => {
  it('count as the session’s pending will (a released session keeps listening for claims meanwhile)', async () => {
    const clock = new FakeClock();
    const { platform: p } = platform();
    const wills = new Wills(p, clock, () => undefined);
    wills.schedule('s1', principal, will('offline'), 0);
    await settle();
    expect(wills.has('s1')).toBe(true);
    wills.claimed('s1', false);
    expect(wills.has('s1')).toBe(false);
    expect(clock.pendingTimers).toBe(0);
  });

  it('a later will of the same session replaces one waiting to be tried again: never published out of order', async () => {
    const clock = new FakeClock();
    let fail = true;
    const { platform: p, attempts } = platform(async () => (fail ? UNAVAILABLE : { ok: true, seq: 1, created: 0 }));
    const logs: string[] = [];
    const wills = new Wills(p, clock, (m) => logs.push(m));
    wills.schedule('s1', principal, will('first'), 0);
    await settle();
    fail = false;
    wills.schedule('s1', principal, will('second'), 0);
    await settle();
    await clock.advance(60_000);
    expect(attempts).toEqual(['first', 'second']);
    expect(logs.some((l) => l.includes('earlier will of dev-1 not tried again'))).toBe(true);
  });

  it('are dropped at shutdown before the wills on their way are awaited', async () => {
    const clock = new FakeClock();
    let hang!: (o: PublishOutcome) => void;
    const { platform: p, attempts } = platform((req) => (new TextDecoder().decode(req.payload) === 'slow' ? new Promise((r) => (hang = r)) : Promise.resolve(UNAVAILABLE)));
    const logs: string[] = [];
    const wills = new Wills(p, clock, (m) => logs.push(m));
    wills.schedule('s1', principal, will('retried'), 0);
    await settle();
    wills.schedule('s2', principal, will('slow'), 0);
    await settle();
    const closed = wills.close();
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(1000);
    hang({ ok: true, seq: 1, created: 0 });
    await closed;
    expect(attempts).toEqual(['retried', 'slow']);
    expect(logs.some((l) => l.includes('1 will(s) waiting to be tried again dropped at shutdown'))).toBe(true);
  });
});
