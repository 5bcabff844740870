-- Schema 5. Idempotency-Keys are claimed in the database, so that several
-- servers on one store run a request with a given key once, and the reply
-- kept for a retry holds no secret at all. The sealed replies of schema 2
-- held the new key's secret under a key derived from inputs a thief could
-- guess: they are dropped, and with secure_delete on (set on every
-- connection) their pages are overwritten.
DROP TABLE idempotent_replies;

CREATE TABLE idempotency_claims (
    lookup     BLOB PRIMARY KEY,   -- SHA-256 of the caller and the Idempotency-Key
    request    BLOB NOT NULL,      -- SHA-256 of the method, path and body
    created_at INTEGER NOT NULL,   -- unix seconds
    status     INTEGER NOT NULL DEFAULT 0,  -- the reply's HTTP status; 0 while the request runs
    body       BLOB,               -- the reply without its secret
    withheld   INTEGER NOT NULL DEFAULT 0  -- 1: a secret was left out of body
);

-- Purging deletes the oldest records.
CREATE INDEX idempotency_claims_created_at ON idempotency_claims (created_at);
