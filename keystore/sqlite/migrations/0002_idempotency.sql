-- Schema 2. Replies of the HTTP API to POST requests that carried an
-- Idempotency-Key, so that a retry gets the first reply, even after the
-- server restarts. The server seals each record (AES-GCM) under a key derived
-- from the Idempotency-Key itself, which is not stored: the record holds the
-- new key's secret, and the store never holds a secret it could read.
CREATE TABLE idempotent_replies (
    lookup     BLOB PRIMARY KEY,   -- SHA-256 of the caller and the Idempotency-Key
    record     BLOB NOT NULL,      -- sealed by the server; opaque here
    created_at INTEGER NOT NULL    -- unix seconds
);

-- Pruning deletes the oldest records.
CREATE INDEX idempotent_replies_created_at ON idempotent_replies (created_at);
