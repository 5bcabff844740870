package sqlstore

import (
	"reflect"
	"testing"
	"testing/fstest"
)

func TestMigrationsInOrder(t *testing.T) {
	fsys := fstest.MapFS{
		"migrations/0002_b.sql": {Data: []byte("B")},
		"migrations/0001_a.sql": {Data: []byte("A")},
		"migrations/0010_c.sql": {Data: []byte("C")},
		"migrations/notes.txt":  {Data: []byte("not a migration")},
	}
	if got, want := MigrationNames(fsys), []string{"migrations/0001_a.sql", "migrations/0002_b.sql", "migrations/0010_c.sql"}; !reflect.DeepEqual(got, want) {
		t.Errorf("MigrationNames = %v, want %v", got, want)
	}
	if got, want := Migrations(fsys), []string{"A", "B", "C"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Migrations = %v, want %v", got, want)
	}
}
