import { afterEach, describe, expect, it, vi } from 'vitest';
import { show, table } from '../../cli/output';

/** What `show` writes to stdout. */
function printed(json: boolean, data: unknown): string {
  const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  show({ json }, data);
  return write.mock.calls.map(([chunk]) => String(chunk)).join('');
}
afterEach(() => vi.restoreAllMocks());

describe('the CLI table (what a terminal shows)', () => {
  it('shows times as ISO 8601 UTC, not milliseconds since 1970; JSON keeps the numbers', () => {
    const t = Date.UTC(2026, 11, 2, 9, 53, 42, 26);
    const out = table(
      [
        { id: 'k1', name: 'ci', expires_at: t, revoked_at: null, created_at: t, last_seen: t },
        { id: 'k2', name: 'old', expires_at: null, revoked_at: t, created_at: t, last_seen: null },
      ],
      ['id', 'name', 'expires_at', 'revoked_at', 'created_at', 'last_seen'],
    );
    expect(out).not.toContain(String(t));
    const [head, first, second] = out.split('\n');
    expect(head!.split(/\s+/)).toEqual(['ID', 'NAME', 'EXPIRES_AT', 'REVOKED_AT', 'CREATED_AT', 'LAST_SEEN']);
    expect(first!.trim().split(/\s+/)).toEqual(['k1', 'ci', '2026-12-02T09:53:42.026Z', '2026-12-02T09:53:42.026Z', '2026-12-02T09:53:42.026Z']);
    expect(second!.trim().split(/\s+/)).toEqual(['k2', 'old', '2026-12-02T09:53:42.026Z', '2026-12-02T09:53:42.026Z']);
    const key = { id: 'k1', expires_at: t, created_at: t, last_seen: t };
    expect(JSON.parse(printed(true, [key]))).toEqual([key]);
  });

  it("shows a message's `created` (ms) as a time too, and leaves SenML's `time` (seconds)", () => {
    const t = Date.UTC(2026, 11, 2, 9, 53, 42, 26);
    expect(table([{ seq: 7, created: t, time: 1796205222.5 }])).toBe('SEQ  CREATED                   TIME\n7    2026-12-02T09:53:42.026Z  1796205222.5');
    expect(JSON.parse(printed(true, { seq: 7, created: t }))).toEqual({ seq: 7, created: t });
  });

  it('shows a number no Date can hold as the number, instead of throwing', () => {
    expect(table([{ created_at: 8.64e15 + 1, expires_at: -8.64e15 }])).toBe('CREATED_AT        EXPIRES_AT\n8640000000000001  -271821-04-20T00:00:00.000Z');
    expect(table([{ created_at: Number.MAX_VALUE, revoked_at: Infinity }])).toBe(`CREATED_AT               REVOKED_AT\n${Number.MAX_VALUE}  Infinity`);
  });

  it('leaves other numbers alone', () => {
    expect(table([{ seq: 1796205222026, total: 3 }])).toBe('SEQ            TOTAL\n1796205222026  3');
  });
});
