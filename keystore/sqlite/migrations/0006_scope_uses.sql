-- Schema 6. Least privilege from real use: when each scope was last asked
-- of the key by a valid verification, as a JSON object of scope names and
-- unix seconds. It is written with last_used_at, in the same statement.
ALTER TABLE keys ADD COLUMN scope_uses TEXT NOT NULL DEFAULT '{}';
