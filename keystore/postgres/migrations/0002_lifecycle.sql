-- Schema 2. A disabled key (keyctl disable) stops verifying until enabled
-- again: disabled_at is the time it was disabled, NULL when it is not.
ALTER TABLE keys ADD COLUMN disabled_at timestamptz;

-- The audit log pages newest first, filtered by action (keyctl audit
-- --action, GET /v1/audit-events?action=).
CREATE INDEX audit_events_action ON audit_events (action, version, seq);
