-- Failed log-ins per email (POST /tokens; workers/users/throttle.ts): after a few in a row, each
-- further attempt for that email must wait, doubling up to 5 minutes, before its password is even
-- checked — a password guesser gets a handful of tries, not PBKDF2's rate, and the wait is spent
-- without our CPU. Keyed by the email as typed, lowercased (unknown emails too, so the answers do
-- not tell which exist); a successful log-in deletes its row, and rows idle a day are pruned.
CREATE TABLE login_failures (
  email      TEXT PRIMARY KEY,   -- lower(email)
  failures   INTEGER NOT NULL,   -- in a row, within FAILURE_WINDOW_MS of each other
  last_at    INTEGER NOT NULL,   -- ms
  wait_until INTEGER NOT NULL    -- ms; 0 while failures are below FREE_FAILURES
);

CREATE INDEX login_failures_last_at ON login_failures (last_at);
