-- Schema 1. A key's secret is never stored: only its SHA-256 (secret_hash)
-- and a display hint. Times are whole seconds.
CREATE TABLE keys (
    id           text PRIMARY KEY,
    name         text NOT NULL,
    environment  text NOT NULL,
    scopes       text[] NOT NULL,
    secret_hash  bytea NOT NULL UNIQUE,
    hint         text NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz,
    rotated_from text REFERENCES keys (id),
    rotated_to   text REFERENCES keys (id),
    metadata     jsonb NOT NULL DEFAULT '{}',
    -- Insertion order, to order keys created in the same second.
    seq          bigint GENERATED ALWAYS AS IDENTITY
);

-- List walks this index backwards: newest first.
CREATE INDEX keys_created_at ON keys (created_at, seq);

-- The change feed: one row whose version every change bumps, under the
-- row's lock, in the change's own transaction. Versions therefore become
-- visible in commit order, which a sequence number taken at insert does not.
CREATE TABLE keyctl_changes (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    version bigint NOT NULL
);
INSERT INTO keyctl_changes (version) VALUES (0);

CREATE TABLE audit_events (
    seq     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version bigint NOT NULL,          -- keyctl_changes.version of the change
    id      text NOT NULL UNIQUE,
    at      timestamptz NOT NULL,
    actor   text NOT NULL,
    action  text NOT NULL,
    key_id  text NOT NULL,
    details jsonb NOT NULL DEFAULT '{}' -- never a secret
);

-- Events in commit order: by version, then in the order of their change.
CREATE INDEX audit_events_order ON audit_events (version, seq);
CREATE INDEX audit_events_key_id ON audit_events (key_id);
-- Audit(keyID) also finds the rotation that created keyID.
CREATE INDEX audit_events_new_key_id ON audit_events ((details ->> 'new_key_id'))
    WHERE action = 'rotate';

-- Replies of the HTTP API to POST requests that carried an Idempotency-Key,
-- sealed by the server (see keystore/sqlite's schema 2).
CREATE TABLE idempotent_replies (
    lookup     bytea PRIMARY KEY,
    record     bytea NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX idempotent_replies_created_at ON idempotent_replies (created_at);
