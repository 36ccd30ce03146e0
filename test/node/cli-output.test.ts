import { describe, expect, it } from 'vitest';
import { table } from '../../cli/output';

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
  });

  it('leaves other numbers alone', () => {
    expect(table([{ seq: 1796205222026, total: 3 }])).toBe('SEQ            TOTAL\n1796205222026  3');
  });
});
