package keystore_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chatbotplatform/keyctl/keystore"
)

// referenceJSON is how encoding/json writes a key record: the bytes that
// AppendJSON must reproduce.
func referenceJSON(t *testing.T, k keystore.Key) []byte {
	t.Helper()
	type plain keystore.Key
	p := plain(k)
	utc := func(t *time.Time) *time.Time {
		if t == nil {
			return nil
		}
		u := t.UTC().Truncate(time.Second)
		return &u
	}
	p.CreatedAt = p.CreatedAt.UTC().Truncate(time.Second)
	p.ExpiresAt, p.RevokedAt, p.LastUsedAt = utc(p.ExpiresAt), utc(p.RevokedAt), utc(p.LastUsedAt)
	p.DisabledAt = utc(p.DisabledAt)
	if p.Scopes == nil {
		p.Scopes = []string{}
	}
	if p.UsedScopes == nil {
		p.UsedScopes = []string{}
	}
	uses := map[string]time.Time{}
	for s, t := range p.ScopesLastUsed {
		uses[s] = t.UTC().Truncate(time.Second)
	}
	p.ScopesLastUsed = uses
	if p.Metadata == nil {
		p.Metadata = map[string]string{}
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkJSON(t *testing.T, k keystore.Key) {
	t.Helper()
	want := referenceJSON(t, k)
	if got := k.AppendJSON([]byte("x")); !bytes.Equal(got[1:], want) || got[0] != 'x' {
		t.Fatalf("AppendJSON\n%s\nwant\n%s", got, want)
	}
	// A tab, and spaces as list -o json indents.
	for _, indent := range []string{"\t", "  "} {
		var ind bytes.Buffer
		json.Indent(&ind, want, "  ", indent)
		if got := k.AppendJSONIndent(nil, "  ", indent); !bytes.Equal(got, ind.Bytes()) {
			t.Fatalf("AppendJSONIndent\n%s\nwant\n%s", got, ind.Bytes())
		}
	}
	// Through an Encoder without HTML escaping, as list -o jsonl does.
	var enc bytes.Buffer
	e := json.NewEncoder(&enc)
	e.SetEscapeHTML(false)
	if err := e.Encode(k); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.TrimSuffix(enc.Bytes(), []byte("\n")), want) {
		t.Fatalf("Encode\n%s\nwant\n%s", enc.Bytes(), want)
	}
}

func TestKeyJSON(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 891, time.FixedZone("x", -3600))
	from, to := "key_aaaaaaaaaaaaaaaa", "key_bbbbbbbbbbbbbbbb"
	for _, k := range []keystore.Key{
		{},
		{ID: "key_0123456789abcdef", Name: "Production Server", Environment: "live", Scopes: []string{"bots:read"},
			Hint: "sk_live_3nF8…a9Qz", Status: "active", CreatedAt: at},
		{ID: "key_x", Name: "<b>&\"quoted\"\\ \n\t\r\b\f\x00\x1f\x7f é 日本 \u2028\u2029 \xff\xfe", Scopes: []string{"a", "b", "c"},
			CreatedAt: at, ExpiresAt: &at, RevokedAt: &at, LastUsedAt: &at, RotatedFrom: &from, RotatedTo: &to, Delivery: &to,
			Metadata: map[string]string{"z": "1", "a": "<2>", "": "", "m\n": "\u2028"}, Secret: "sk_test_secret",
			UsedScopes: []string{"bots:read", "admin"}, ScopesLastUsed: map[string]time.Time{"admin": at, "bots:read": at.Add(time.Hour), "<x>\n": at}},
		{Scopes: []string{}, Metadata: map[string]string{}},
	} {
		checkJSON(t, k)
	}
}

func TestVerificationAppendJSON(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	k := &keystore.Key{ID: "key_0123456789abcdef", Name: "a<b>", Scopes: []string{"bots:read"}, CreatedAt: at}
	for _, v := range []keystore.Verification{
		{},
		*keystore.InvalidFormat(),
		*keystore.Judge(k, at, []string{"bots:read"}),
		*keystore.Judge(k, at, []string{"bots:write", "channels:read"}),
		*keystore.Judge(nil, at, nil),
	} {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got := v.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("AppendJSON\n%s\nwant\n%s", got, want)
		}
	}
}

func FuzzKeyJSON(f *testing.F) {
	f.Add("key_0123456789abcdef", "name", "bots:read bots:write", "k", "v", int64(1700000000), int64(0), 0)
	f.Add("", "<&>\u2028\xff", "", "", "", int64(-62135596800), int64(999999999), -3600)
	f.Fuzz(func(t *testing.T, id, name, scopes, mk, mv string, unix, nsec int64, offset int) {
		at := time.Unix(unix, nsec%1e9).In(time.FixedZone("z", offset%100000))
		if y := at.UTC().Year(); y < 0 || y > 9999 {
			return
		}
		k := keystore.Key{ID: id, Name: name, Scopes: strings.Fields(scopes), CreatedAt: at, LastUsedAt: &at, DisabledAt: &at,
			RotatedTo: &mv, Metadata: map[string]string{mk: mv, mv: mk}}
		k.SetScopeUses(map[string]time.Time{mk: at, mv: at.Add(time.Minute)})
		checkJSON(t, k)
	})
}
