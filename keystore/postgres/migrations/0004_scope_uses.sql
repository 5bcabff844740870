-- Schema 4. Least privilege from real use: when each scope was last asked
-- of the key by a valid verification, as a JSON object of scope names and
-- unix seconds. The use recorder writes it with last_used_at.
ALTER TABLE keys ADD COLUMN scope_uses jsonb NOT NULL DEFAULT '{}';
