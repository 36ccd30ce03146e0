import { describe, expect, it } from 'vitest';
import { Edgeflux, EdgefluxError } from '../../sdk';

/**
 * How the SDK reports a request that never got an answer. A name with several addresses that all
 * refuse (localhost: ::1 and 127.0.0.1, where the machine resolves both) makes Node's fetch fail
 * with a cause whose message is empty and whose code says why; that fault is not reproducible on
 * every machine, so its shape is given here by a fetch that throws it.
 */
describe('SDK network errors', () => {
  const failing = (cause: Error) => async () => {
    throw new TypeError('fetch failed', { cause });
  };
  it.each([
    ['every address refused (an empty message, a code)', Object.assign(new AggregateError([], ''), { code: 'ECONNREFUSED' }), 'fetch failed (ECONNREFUSED)'],
    ['one address refused', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }), 'fetch failed (connect ECONNREFUSED 127.0.0.1:9)'],
  ])('%s: the detail says why', async (_what, cause, said) => {
    const ef = new Edgeflux({ url: 'http://localhost:9', token: 'x', fetch: failing(cause) });
    const e = await ef.orgs.list().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(EdgefluxError);
    expect((e as EdgefluxError).code).toBe('network_error');
    expect((e as EdgefluxError).detail).toBe(`GET http://localhost:9/orgs: ${said}`);
  });
});
