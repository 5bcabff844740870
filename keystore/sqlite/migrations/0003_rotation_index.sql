-- Schema 3. Only a rotation's event names a new key (details.new_key_id):
-- index those events alone, so that every create and import, one event
-- each, does not parse its details to add an empty entry to the index.
-- Audit(keyID) asks for action = 'rotate', which lets SQLite use it.
DROP INDEX audit_events_new_key_id;
CREATE INDEX audit_events_new_key_id ON audit_events (json_extract(details, '$.new_key_id'))
    WHERE action = 'rotate';
