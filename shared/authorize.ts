/**
 * The bound of one batch of `/internal/authorize` (workers/internal/schemas.ts validates it; the
 * bridge splits its coalesced questions at it, bridge/platform/authorize-batch.ts). The worker reads
 * a batch in one D1 round trip whatever its size, so the bound keeps one request's memory and CPU
 * small, not its reads: 100 principals (sessions) and 1000 checks in all, each principal's checks
 * at most 100 as in the single form.
 */
export const AUTHORIZE_BATCH = { items: 100, checks: 1000, checksPerItem: 100 } as const;
