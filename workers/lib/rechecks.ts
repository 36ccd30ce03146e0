import { recheckLiveChannels } from './actors';

/**
 * Coalesces the rechecks that access-changing writes ask of an org's live channels
 * (`recheckLiveChannels`): a script making a hundred access changes a second would otherwise make
 * each live channel's actor ask again about its subscribers a hundred times.
 *
 * The rule that keeps it safe: a write is covered only by a recheck that *starts* after the write
 * committed — the actors then read D1 after it, so no recheck runs on access data older than a
 * write it stands for. Each write takes a ticket once it is committed; a recheck starting covers
 * every ticket taken so far. A write whose ticket is not covered yet waits, in its own request's
 * waitUntil, until no recheck of the org is under way and RECHECK_WINDOW_MS have passed since the
 * last one started, and then runs one itself for every write waiting — unless another waiting
 * request's recheck started first and covered it. So per org and worker isolate at most one
 * recheck is in flight, one starts at most every RECHECK_WINDOW_MS, and a write after a quiet spell
 * is rechecked at once. Each request does its own I/O (a Worker may not use another request's),
 * and waits by its own timers rather than on another request's promise.
 *
 * Isolates do not share this: writes spread over several isolates coalesce per isolate.
 */

/** At most one recheck of an org starts per this many ms (per isolate); later writes join the next. */
export const RECHECK_WINDOW_MS = 250;
/** While a recheck is under way, a waiting write looks again this often. */
const POLL_MS = 20;
/** A recheck under way longer than this is taken for lost (its request cancelled): the next write runs one. */
const STALE_MS = 10_000;
/** Orgs remembered at most; idle ones are forgotten past this. */
const MAX_ORGS = 10_000;

interface OrgRechecks {
  /** Tickets handed out: one per committed write. */
  issued: number;
  /** Every ticket up to this one is covered by a recheck that has started. */
  covered: number;
  /** Every ticket up to this one is covered by a recheck that has ended well; a failed one hands its tickets back (covered falls to this). */
  confirmed: number;
  running: boolean;
  /** Rechecks started: a stale one ending late does not mark a newer one done. */
  runs: number;
  /** When the last recheck started (ms). */
  lastStart: number;
}

const orgs = new Map<string, OrgRechecks>();

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * After a committed write that changed `org`'s access: its live channels recheck their subscribers
 * by a recheck that starts after now — this request's or one it shares. Resolves once a recheck
 * that stands for it has ended well — another request's (this one waits by its own timer) or its
 * own; if the one that stood for it fails or is lost, this request runs one (for waitUntil).
 */
export async function recheckLiveChannelsSoon(env: Env, org: string): Promise<void> {
  const s = stateOf(org);
  const ticket = ++s.issued;
  for (;;) {
    if (s.confirmed >= ticket) return; // a recheck that started after this write has done it
    // The one that stood for it failed or was lost. The catch below hands back at once; this also
    // covers a run a newer one superseded (the catch then leaves `covered` alone). The tests pin
    // the two only together.
    if (s.covered >= ticket && !s.running) s.covered = s.confirmed;
    if (s.covered >= ticket) {
      await sleep(POLL_MS); // another request's recheck stands for it: wait for its outcome
      if (Date.now() - s.lastStart >= STALE_MS) s.covered = s.confirmed;
      continue;
    }
    const now = Date.now();
    const wait = s.running && now - s.lastStart < STALE_MS ? POLL_MS : s.lastStart + RECHECK_WINDOW_MS - now;
    if (wait <= 0) break;
    await sleep(Math.max(POLL_MS, wait));
  }
  // No await between the check above and this: in one isolate, one waiting request wins.
  const upTo = (s.covered = s.issued);
  s.running = true;
  s.lastStart = Date.now();
  const run = ++s.runs;
  try {
    await recheckLiveChannels(env, org);
    s.confirmed = Math.max(s.confirmed, upTo);
  } catch (e) {
    // The writes it stood for are uncovered again: the next waiting request, or the next write, runs one.
    if (s.runs === run) s.covered = s.confirmed;
    throw e;
  } finally {
    if (s.runs === run) s.running = false;
  }
}

function stateOf(org: string): OrgRechecks {
  let s = orgs.get(org);
  if (s) return s;
  if (orgs.size >= MAX_ORGS) {
    const now = Date.now();
    for (const [k, v] of orgs) if (!v.running && v.confirmed === v.issued && now - v.lastStart >= RECHECK_WINDOW_MS) orgs.delete(k);
  }
  orgs.set(org, (s = { issued: 0, covered: 0, confirmed: 0, running: false, runs: 0, lastStart: 0 }));
  return s;
}
