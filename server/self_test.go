package server_test

import (
	"net/http"
	"testing"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/server"
)

// Any valid key reads and rotates itself, confirms the delivery of its own
// successor and may revoke that successor while it awaits delivery; it may
// touch no other key.
func TestSelf(t *testing.T) {
	f := newFixture(t, server.Options{})
	other := f.create(keystore.CreateParams{Name: "other", Scopes: []string{"bots:read"}})

	var me keystore.Key
	data(t, "GET self", f.do("GET", "/v1/api-keys/self", f.reader.Secret, ""), http.StatusOK, &me)
	if me.ID != f.reader.ID || me.Secret != "" {
		t.Errorf("GET self = %s (secret set %v), want %s", me.ID, me.Secret != "", f.reader.ID)
	}
	wantError(t, "GET self without a key", f.do("GET", "/v1/api-keys/self", "", ""), http.StatusUnauthorized, keystore.EUNAUTHORIZED)

	// Not another key's rotation, confirmation or revocation.
	wantError(t, "rotate another key", f.do("POST", "/v1/api-keys/"+other.ID+"/rotate", f.reader.Secret, ""), http.StatusForbidden, keystore.EFORBIDDEN)
	wantError(t, "confirm another key", f.do("POST", "/v1/api-keys/"+other.ID+"/confirm-delivery", f.reader.Secret, ""), http.StatusForbidden, keystore.EFORBIDDEN)
	wantError(t, "revoke another key", f.do("DELETE", "/v1/api-keys/"+other.ID, f.reader.Secret, ""), http.StatusForbidden, keystore.EFORBIDDEN)
	wantError(t, "confirm an unknown key", f.do("POST", "/v1/api-keys/key_0000000000000000/confirm-delivery", f.reader.Secret, ""), http.StatusForbidden, keystore.EFORBIDDEN)

	// Rotate itself, awaiting delivery: the old key works until then.
	var nk keystore.Key
	data(t, "POST self/rotate", f.do("POST", "/v1/api-keys/self/rotate", f.reader.Secret, `{"grace_seconds": 0, "await_delivery_seconds": 600}`), http.StatusCreated, &nk)
	if nk.Secret == "" || nk.RotatedFrom == nil || *nk.RotatedFrom != f.reader.ID || nk.Delivery == nil || *nk.Delivery != keystore.DeliveryPending {
		t.Fatalf("self rotation = %+v", nk)
	}
	// Its undelivered successor it may revoke, which undoes the rotation.
	data(t, "revoke own undelivered successor", f.do("DELETE", "/v1/api-keys/"+nk.ID, f.reader.Secret, ""), http.StatusOK, nil)
	data(t, "POST self/rotate again", f.do("POST", "/v1/api-keys/self/rotate", f.reader.Secret, `{"await_delivery_seconds": 600}`), http.StatusCreated, &nk)
	// The new key confirms its own delivery, which ends the old one.
	var done keystore.Key
	data(t, "confirm own delivery", f.do("POST", "/v1/api-keys/"+nk.ID+"/confirm-delivery", nk.Secret, ""), http.StatusOK, &done)
	if done.Delivery == nil || *done.Delivery != keystore.DeliveryDelivered {
		t.Errorf("confirmed key delivery %v", done.Delivery)
	}
	wantError(t, "the old key after the delivery", f.do("GET", "/v1/api-keys/self", f.reader.Secret, ""), http.StatusUnauthorized, keystore.EUNAUTHORIZED)
	// A delivered successor is no longer the old key's to revoke; the new
	// key may not revoke others.
	wantError(t, "revoke another key as the new key", f.do("DELETE", "/v1/api-keys/"+other.ID, nk.Secret, ""), http.StatusForbidden, keystore.EFORBIDDEN)

	// An admin confirms any key; a key that awaits no delivery is a 409.
	wantError(t, "confirm a created key", f.do("POST", "/v1/api-keys/"+other.ID+"/confirm-delivery", f.admin.Secret, ""), http.StatusConflict, keystore.ECONFLICT)
	wantError(t, "a bad rotate body", f.do("POST", "/v1/api-keys/self/rotate", nk.Secret, `{"await_delivery_seconds": "soon"}`), http.StatusBadRequest, keystore.EINVALID)
}
