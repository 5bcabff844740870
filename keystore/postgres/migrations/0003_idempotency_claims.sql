-- Schema 3. Idempotency-Keys are claimed in the database, so that replicas
-- run a request with a given key once, and the reply kept for a retry holds
-- no secret at all (see keystore/sqlite's schema 4). The sealed replies of
-- schema 1 held the new key's secret under a key derived from inputs a
-- thief could guess: they are dropped.
DROP TABLE idempotent_replies;

CREATE TABLE idempotency_claims (
    lookup     bytea PRIMARY KEY,        -- SHA-256 of the caller and the Idempotency-Key
    request    bytea NOT NULL,           -- SHA-256 of the method, path and body
    created_at timestamptz NOT NULL,
    status     integer NOT NULL DEFAULT 0,  -- the reply's HTTP status; 0 while the request runs
    body       bytea,                    -- the reply without its secret
    withheld   boolean NOT NULL DEFAULT false  -- a secret was left out of body
);

-- Purging deletes the oldest records.
CREATE INDEX idempotency_claims_created_at ON idempotency_claims (created_at);
