package sqlite

import "testing"

// schemaVersion saves start-up from reading the migrations; it must count
// them.
func TestSchemaVersionCountsMigrations(t *testing.T) {
	if n := len(migrations()); n != schemaVersion {
		t.Errorf("%d migrations, but schemaVersion = %d", n, schemaVersion)
	}
}
