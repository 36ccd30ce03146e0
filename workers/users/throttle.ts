import { ApiError } from '../lib/errors';

/**
 * Log-in throttling (migrations/0010), in two counts, both taken before the password is checked:
 *
 * - **Per email and client address** (Cloudflare's `CF-Connecting-IP`; an IPv6 address by its /64):
 *   FREE_FAILURES + 1 attempts in a row go through at once, then each further one must wait 1 s,
 *   2 s, 4 s … up to MAX_WAIT_MS after the one before — refused meanwhile with 429 and Retry-After,
 *   before any hashing. A successful log-in clears that address's count only, so someone guessing
 *   from elsewhere neither gains a fresh budget from the owner's log-ins nor holds the owner out.
 * - **Per email, whatever the address**: at most EMAIL_CEILING attempts that did not succeed in an
 *   hour; past it every address waits for the hour to end. This bounds a guesser spreading over
 *   many addresses — at the cost that one with EMAIL_CEILING addresses' worth of attempts an hour
 *   can hold the owner out too (docs/auth.md says so).
 *
 * Counting first is what holds under concurrency: a hundred guesses sent at once are counted one by
 * one, and all but the first few are refused, rather than all reading "no failures yet". Attempts
 * further apart than FAILURE_WINDOW_MS start an address's count again. Unknown emails are counted
 * alike, so the answers never tell which exist.
 */
export const FREE_FAILURES = 5;
export const MAX_WAIT_MS = 5 * 60_000;
export const FAILURE_WINDOW_MS = 15 * 60_000;
export const EMAIL_CEILING = 500;
export const EMAIL_WINDOW_MS = 3600_000;
/** Rows not touched for this long are pruned (a few at a time, by later attempts). */
const PRUNE_AFTER_MS = 24 * 3600_000;

/** The client address a count is kept for: IPv4 as is, IPv6 by its /64 (one host's share of addresses); '' when unknown (local dev). */
export function clientOf(address: string | null | undefined): string {
  const a = (address ?? '').trim().toLowerCase();
  if (!a.includes(':')) return a;
  // An IPv4 client written as IPv6 (::ffff:203.0.113.7) is that IPv4 address, not one shared /64.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped) return mapped[1]!;
  const [head = '', tail = ''] = a.split('::');
  const left = head ? head.split(':') : [];
  const right = a.includes('::') && tail ? tail.split(':') : [];
  const groups = a.includes('::') ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right] : left;
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

const perClient = (email: string, client: string) => `${email.toLowerCase()}\n${client}`;
const perEmail = (email: string) => `${email.toLowerCase()}\n*`;

/**
 * The statements that count an attempt for `email` from `client` at `now` — for the address only
 * while it need not wait, and then for the email's hour too — read the address's wait, and prune a
 * few stale rows: run in the log-in's one D1 batch. Results: [counted for the address, its wait,
 * the email's count this hour (none when the address was refused), prune].
 */
export function attemptStatements(db: D1Database, email: string, client: string, now: number): D1PreparedStatement[] {
  const key = perClient(email, client);
  return [
    db
      .prepare(
        `INSERT INTO login_failures (subject, failures, last_at, wait_until) VALUES (?1, 1, ?2, 0)
         ON CONFLICT (subject) DO UPDATE SET
           failures = CASE WHEN ?2 - last_at >= ?3 THEN 1 ELSE failures + 1 END,
           wait_until = CASE WHEN ?2 - last_at >= ?3 OR failures + 1 <= ?4 THEN 0 ELSE ?2 + min(?5, 1000 << min(failures - ?4, 30)) END,
           last_at = ?2
         WHERE wait_until <= ?2
         RETURNING failures`,
      )
      .bind(key, now, FAILURE_WINDOW_MS, FREE_FAILURES, MAX_WAIT_MS),
    db.prepare('SELECT wait_until FROM login_failures WHERE subject = ?').bind(key),
    // The email's hour (`last_at` when it began, `wait_until` when it ends), counted only for an
    // attempt the address's count let through — `changes()`: the first statement's own write (the
    // batch runs on one connection; the SELECT between changes nothing). Not "its row stamped `now`":
    // attempts refused in the same millisecond as a counted one would pass that. Refused attempts
    // cost nothing, so one address cannot spend the email's hour.
    db
      .prepare(
        `INSERT INTO login_failures (subject, failures, last_at, wait_until)
           SELECT ?1, 1, ?2, ?2 + ?3 WHERE changes() > 0
         ON CONFLICT (subject) DO UPDATE SET
           failures = CASE WHEN ?2 >= wait_until THEN 1 ELSE failures + 1 END,
           last_at = CASE WHEN ?2 >= wait_until THEN ?2 ELSE last_at END,
           wait_until = CASE WHEN ?2 >= wait_until THEN ?2 + ?3 ELSE wait_until END
         RETURNING failures, wait_until`,
      )
      .bind(perEmail(email), now, EMAIL_WINDOW_MS),
    db.prepare('DELETE FROM login_failures WHERE subject IN (SELECT subject FROM login_failures WHERE last_at < ? LIMIT 20)').bind(now - PRUNE_AFTER_MS),
  ];
}

const throttled = (waitMs: number) => {
  const s = Math.max(1, Math.ceil(waitMs / 1000));
  return new ApiError(429, 'login_throttled', `too many failed log-ins for this email: try again in ${s} s`, undefined, { 'Retry-After': String(s) });
};

/** 429 when this address must wait, or the email's hour is spent; from the batch's results. */
export function refuseThrottled(results: D1Result<Record<string, unknown>>[], now: number): void {
  const [counted, waiting, hour] = results;
  if (!counted?.results.length) throw throttled(Number(waiting?.results[0]?.wait_until ?? 0) - now);
  const h = hour?.results[0];
  if (h && Number(h.failures) > EMAIL_CEILING) throw throttled(Number(h.wait_until) - now);
}

/** A successful log-in: this address's count is cleared, and it does not count toward the email's hour. */
export function succeeded(db: D1Database, email: string, client: string): D1PreparedStatement[] {
  return [
    db.prepare('DELETE FROM login_failures WHERE subject = ?').bind(perClient(email, client)),
    db.prepare('UPDATE login_failures SET failures = max(failures - 1, 0) WHERE subject = ?').bind(perEmail(email)),
  ];
}
