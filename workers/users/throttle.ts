import { ApiError } from '../lib/errors';

/**
 * Log-in throttling per email (migrations/0010). Every attempt is counted before its password is
 * checked, in one statement, and a successful one clears the count: so FREE_FAILURES + 1 attempts
 * in a row go through at once, and then each further one must wait 1 s, 2 s, 4 s … up to
 * MAX_WAIT_MS after the one before — refused meanwhile with 429 and Retry-After, before any
 * hashing. Counting first is what holds under concurrency: a hundred guesses sent at once are
 * counted one by one, and all but the first few are refused, rather than all reading "no failures
 * yet". Attempts further apart than FAILURE_WINDOW_MS start the count again. Per email, not per
 * address: a guesser rotating addresses gains nothing, and the most someone failing on purpose can
 * hold a victim out is MAX_WAIT_MS at a time.
 */
export const FREE_FAILURES = 5;
export const MAX_WAIT_MS = 5 * 60_000;
export const FAILURE_WINDOW_MS = 15 * 60_000;
/** Rows not touched for this long are pruned (a few at a time, by later attempts). */
const PRUNE_AFTER_MS = 24 * 3600_000;

/**
 * The statements that count an attempt for `email` at `now` (only while it need not wait), read
 * what it must wait otherwise, and prune a few stale rows — run in the log-in's one D1 batch.
 */
export function attemptStatements(db: D1Database, email: string, now: number): D1PreparedStatement[] {
  return [
    db
      .prepare(
        `INSERT INTO login_failures (email, failures, last_at, wait_until) VALUES (lower(?1), 1, ?2, 0)
         ON CONFLICT (email) DO UPDATE SET
           failures = CASE WHEN ?2 - last_at >= ?3 THEN 1 ELSE failures + 1 END,
           wait_until = CASE WHEN ?2 - last_at >= ?3 OR failures + 1 <= ?4 THEN 0 ELSE ?2 + min(?5, 1000 << min(failures - ?4, 30)) END,
           last_at = ?2
         WHERE wait_until <= ?2
         RETURNING failures`,
      )
      .bind(email, now, FAILURE_WINDOW_MS, FREE_FAILURES, MAX_WAIT_MS),
    db.prepare('SELECT wait_until FROM login_failures WHERE email = lower(?)').bind(email),
    db.prepare('DELETE FROM login_failures WHERE email IN (SELECT email FROM login_failures WHERE last_at < ? LIMIT 20)').bind(now - PRUNE_AFTER_MS),
  ];
}

/** 429 when the attempt was not counted (it came too soon); `waitUntil` from the batch's read. */
export function refuseUncounted(counted: D1Result<Record<string, unknown>> | undefined, waitUntil: number, now: number): void {
  if (counted?.results.length) return;
  const s = Math.max(1, Math.ceil((waitUntil - now) / 1000));
  throw new ApiError(429, 'login_throttled', `too many failed log-ins for this email: try again in ${s} s`, undefined, { 'Retry-After': String(s) });
}

export const clearFailures = (db: D1Database, email: string) => db.prepare('DELETE FROM login_failures WHERE email = lower(?)').bind(email).run();
