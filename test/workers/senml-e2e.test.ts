import { runDurableObjectAlarm } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { jsonPackToCbor } from '../../shared/senml/vectors/cbor';
import { NOW, RFC_EXAMPLES } from '../../shared/senml/vectors/rfc8428';
import { api, newOrg, newUser } from './helpers';

/**
 * Every example pack of RFC 8428, published through the platform as SenML JSON and as SenML CBOR,
 * stored by the channel actor, drained to D1, and read back through the query API as the resolved
 * records the RFC prescribes. Relative times resolve against the message's `created`, not a fixed now.
 */
describe('RFC 8428 examples end to end', () => {
  it('stores and serves every example, JSON and CBOR, as its resolved records', async () => {
    const u = await newUser();
    const org = (await newOrg(u.token)).id;
    const ch = (await api('POST', `/orgs/${org}/channels`, { token: u.token, body: { name: 'rfc' } })).body.id as string;
    const dev = (await api('POST', `/orgs/${org}/devices`, { token: u.token, body: { name: 'd' } })).body as { id: string; key: string };
    await api('PUT', `/orgs/${org}/channels/${ch}/devices/${dev.id}`, { token: u.token, body: {} });

    const sent: { seq: number; created: number; example: (typeof RFC_EXAMPLES)[number]; form: string }[] = [];
    for (const example of RFC_EXAMPLES) {
      for (const [form, body, type] of [
        ['json', example.json, 'application/senml+json'],
        ['cbor', jsonPackToCbor(JSON.parse(example.json)), 'application/senml+cbor'],
      ] as const) {
        const r = await api('POST', `/channels/${ch}/messages`, { device: dev.key, raw: body, headers: { 'content-type': type } });
        expect(r.status, `${example.section} ${form}: ${JSON.stringify(r.body)}`).toBe(202);
        sent.push({ seq: r.body.seq, created: r.body.created, example, form });
      }
    }
    expect(await runDurableObjectAlarm(env.CHANNELS.get(env.CHANNELS.idFromName(ch)))).toBe(true);

    const got = (await api('GET', `/channels/${ch}/messages?format=senml&order=asc&limit=1000`, { token: u.token })).body.items as Record<string, unknown>[];
    for (const s of sent) {
      const mine = got.filter((r) => r.seq === s.seq);
      const where = `RFC 8428 ${s.example.section} (${s.form})`;
      expect(mine.length, where).toBe(s.example.expected.length);
      s.example.expected.forEach((want, i) => {
        const have = mine[i]!;
        const relative = Math.abs(want.time - NOW) < 2 ** 28;
        const wantTime = relative ? s.created / 1000 + (want.time - NOW) : want.time;
        expect(have.time as number, `${where} record ${i} time`).toBeCloseTo(wantTime, 3);
        const { time: _t, ...rest } = want;
        expect(have, `${where} record ${i}`).toMatchObject(rest);
      });
    }
  });
});
