-- Log-in attempts counted by POST /tokens (workers/users/throttle.ts), one row per subject:
--   "<email>\n<client address>"  — attempts in a row from one address: after a few, each further one
--                                   waits, doubling up to 5 minutes, before its password is checked;
--   "<email>\n*"                  — attempts that did not succeed this hour, whatever the address,
--                                   capped so a guesser spreading over addresses stays bounded.
-- Emails lowercased; unknown emails are counted alike (the answers do not tell which exist). A
-- successful log-in deletes its address's row; rows idle a day are pruned.
CREATE TABLE login_failures (
  subject    TEXT PRIMARY KEY,
  failures   INTEGER NOT NULL,
  last_at    INTEGER NOT NULL,   -- ms: the last attempt counted (an email's row: when its hour began)
  wait_until INTEGER NOT NULL    -- ms: no attempt counted before (an email's row: when its hour ends)
);

CREATE INDEX login_failures_last_at ON login_failures (last_at);
