package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

// undoSchema7 takes a store back to schema 6, as an older keyctl left it.
var undoSchema7 = []string{
	"ALTER TABLE keys DROP COLUMN delivery",
	"ALTER TABLE keys DROP COLUMN delivery_due",
	"ALTER TABLE keys DROP COLUMN delivery_grace",
	"PRAGMA user_version = 6",
}

// Schema 7 adds the delivery of rotated secrets: a store of schema 6 is
// brought up to it, its keys without a delivery, and a rotation can then
// await its delivery.
func TestMigrateToSchema7(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	s := open(t, path)
	k := create(t, s, "old")
	s.Close()
	db := rawDB(t, path)
	execAll(t, db, undoSchema7...)
	db.Close()

	s = open(t, path)
	defer s.Close()
	got, err := s.Get(context.Background(), k.ID)
	if err != nil || got.Delivery != nil {
		t.Fatalf("Get after the upgrade = %+v, %v; want no delivery", got, err)
	}
	if got := pragma(t, path, "user_version"); got != "7" {
		t.Errorf("user_version = %q, want 7", got)
	}
	nk, err := s.Rotate(context.Background(), k.ID, keystore.RotateOptions{AwaitDelivery: time.Minute})
	if err != nil || nk.Delivery == nil || *nk.Delivery != keystore.DeliveryPending {
		t.Fatalf("Rotate after the upgrade = %+v, %v", nk, err)
	}
	if _, err := s.ConfirmDelivery(context.Background(), nk.ID); err != nil {
		t.Fatalf("ConfirmDelivery after the upgrade: %v", err)
	}
}
