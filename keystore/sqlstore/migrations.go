package sqlstore

import (
	"io/fs"
	"slices"
)

// MigrationNames returns the names of the schema changes in fsys
// (migrations/*.sql), in order: a store at schema version N has had the
// first N applied.
func MigrationNames(fsys fs.FS) []string {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		panic(err) // the pattern is well formed
	}
	slices.Sort(names)
	return names
}

// Migrations returns the schema changes in fsys, in the order of
// MigrationNames. fsys is the store's embedded files: one that cannot be
// read is a broken build.
func Migrations(fsys fs.FS) []string {
	names := MigrationNames(fsys)
	out := make([]string, len(names))
	for i, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			panic(err)
		}
		out[i] = string(b)
	}
	return out
}
