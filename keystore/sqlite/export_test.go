package sqlite

// SchemaVersion is the schema version of an up-to-date store, for the
// tests of package sqlite_test.
const SchemaVersion = schemaVersion
