-- Schema 1. A key's secret is never stored: only its SHA-256 (secret_hash)
-- and a display hint. Times are unix seconds, UTC.
CREATE TABLE keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    environment  TEXT NOT NULL,
    scopes       TEXT NOT NULL,              -- space-separated
    secret_hash  BLOB NOT NULL UNIQUE,
    hint         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER,
    rotated_from TEXT REFERENCES keys (id),
    rotated_to   TEXT REFERENCES keys (id),
    metadata     TEXT NOT NULL DEFAULT '{}'  -- JSON object of strings
);

-- List walks this index backwards: newest first, ties by insertion order
-- (the index carries the rowid).
CREATE INDEX keys_created_at ON keys (created_at);

CREATE TABLE audit_events (
    seq     INTEGER PRIMARY KEY,             -- gives the order of events
    id      TEXT NOT NULL UNIQUE,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    key_id  TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}'       -- JSON object, never a secret
);

CREATE INDEX audit_events_key_id ON audit_events (key_id);

-- Audit(keyID) also finds the rotation that created keyID.
CREATE INDEX audit_events_new_key_id ON audit_events (json_extract(details, '$.new_key_id'));
