package server_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
	"github.com/chatbotplatform/keyctl/keystore/storetest"
	"github.com/chatbotplatform/keyctl/server"
)

func TestUpdateDisableEnableDelete(t *testing.T) {
	for _, cached := range []bool{false, true} {
		t.Run(fmt.Sprint("cached=", cached), func(t *testing.T) {
			testUpdateDisableEnableDelete(t, newFixtureCached(t, server.Options{}, cached))
		})
	}
}

func testUpdateDisableEnableDelete(t *testing.T, f *fixture) {
	a := f.admin.Secret
	expires := storetest.Start.Add(48 * time.Hour)
	k := f.create(keystore.CreateParams{Name: "bot", Scopes: []string{"bots:read", "bots:write"}, ExpiresAt: &expires,
		Metadata: map[string]string{"team": "a", "gone": "x"}})
	path := "/v1/api-keys/" + k.ID

	var got keystore.Key
	data(t, "patch", f.do("PATCH", path, a, `{"name": "bot 2", "scopes": ["bots:*", "channels:read"], "expires_at": null, "metadata": {"team": "b", "gone": null}}`), 200, &got)
	if got.Name != "bot 2" || !slices.Equal(got.Scopes, []string{"bots:read", "bots:write", "channels:read"}) || got.ExpiresAt != nil ||
		len(got.Metadata) != 1 || got.Metadata["team"] != "b" || got.Secret != "" {
		t.Errorf("patched key = %+v", got)
	}
	data(t, "patch expiry", f.do("PATCH", path, a, `{"expires_at": "2026-02-01T00:00:00Z"}`), 200, &got)
	if got.ExpiresAt == nil || got.ExpiresAt.Format(time.RFC3339) != "2026-02-01T00:00:00Z" || got.Name != "bot 2" {
		t.Errorf("key after patching its expiry = %+v", got)
	}
	for name, body := range map[string]string{
		"empty object":  `{}`,
		"empty body":    ``,
		"bad expiry":    `{"expires_at": "soon"}`,
		"bad scope":     `{"scopes": ["bots:delete"]}`,
		"no scopes":     `{"scopes": []}`,
		"unknown field": `{"key": "sk_live_x"}`,
		"secret":        `{"hint": "x"}`,
	} {
		wantError(t, "patch "+name, f.do("PATCH", path, a, body), 400, keystore.EINVALID)
	}
	wantError(t, "patch unknown", f.do("PATCH", "/v1/api-keys/key_"+"0000000000000000", a, `{"name": "x"}`), 404, keystore.ENOTFOUND)

	data(t, "disable", f.do("POST", path+"/disable", a, ""), 200, &got)
	if got.Status != keystore.StatusDisabled || got.DisabledAt == nil {
		t.Errorf("disabled key = %+v", got)
	}
	var v keystore.Verification
	data(t, "verify disabled", f.do("POST", "/v1/api-keys/verify", a, `{"key": "`+k.Secret+`"}`), 200, &v)
	if v.Valid || v.Code != keystore.CodeDisabled {
		t.Errorf("verify of a disabled key = %+v", v)
	}
	// A disabled key does not authenticate.
	wantError(t, "disabled bearer", f.do("GET", "/v1/api-keys", k.Secret, ""), 401, keystore.EUNAUTHORIZED)
	data(t, "enable", f.do("POST", path+"/enable", a, ""), 200, &got)
	if got.Status != keystore.StatusActive || got.DisabledAt != nil {
		t.Errorf("enabled key = %+v", got)
	}
	wantError(t, "delete active", f.do("POST", path+"/delete", a, ""), 409, keystore.ECONFLICT)
	data(t, "revoke", f.do("DELETE", path, a, ""), 200, nil)
	wantError(t, "enable revoked", f.do("POST", path+"/enable", a, ""), 409, keystore.ECONFLICT)
	data(t, "delete", f.do("POST", path+"/delete", a, ""), 200, &got)
	if got.ID != k.ID {
		t.Errorf("deleted key = %+v", got)
	}
	wantError(t, "show deleted", f.do("GET", path, a, ""), 404, keystore.ENOTFOUND)

	var events []keystore.Event
	meta := data(t, "audit", f.do("GET", "/v1/audit-events?key_id="+k.ID+"&per_page=2&page=2", a, ""), 200, &events)
	if string(meta) != `{"page":2,"per_page":2,"total":7}` {
		t.Errorf("audit meta = %s", meta)
	}
	if len(events) != 2 || events[0].Action != keystore.ActionEnable || events[1].Action != keystore.ActionDisable {
		t.Errorf("audit page 2 = %+v, want enable, disable", events)
	}
	meta = data(t, "audit by action", f.do("GET", "/v1/audit-events?action=update", a, ""), 200, &events)
	if len(events) != 2 || string(meta) != `{"page":1,"per_page":20,"total":2}` {
		t.Errorf("update events = %+v, meta %s", events, meta)
	}
	data(t, "audit since", f.do("GET", "/v1/audit-events?since=2027-01-01T00:00:00Z", a, ""), 200, &events)
	if len(events) != 0 {
		t.Errorf("events since 2027 = %+v", events)
	}
	wantError(t, "audit bad action", f.do("GET", "/v1/audit-events?action=explode", a, ""), 400, keystore.EINVALID)
	wantError(t, "audit bad since", f.do("GET", "/v1/audit-events?since=yesterday", a, ""), 400, keystore.EINVALID)
	wantError(t, "audit bad page", f.do("GET", "/v1/audit-events?per_page=101", a, ""), 400, keystore.EINVALID)
}
