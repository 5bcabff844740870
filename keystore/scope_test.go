package keystore_test

import (
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/chatbotplatform/keyctl/keystore"
)

// canonical is the scope list of DESIGN.md, in its order.
var canonical = []string{
	"bots:read", "bots:write",
	"integrations:read", "integrations:write",
	"channels:read", "channels:write",
	"conversations:read", "conversations:write",
	"agent-loops:read", "agent-loops:write",
	"admin",
}

func TestAllScopes(t *testing.T) {
	if !slices.Equal(keystore.AllScopes, canonical) {
		t.Fatalf("AllScopes = %q, want %q", keystore.AllScopes, canonical)
	}
	for _, s := range canonical {
		if !keystore.ValidScope(s) {
			t.Errorf("ValidScope(%q) = false", s)
		}
	}
	for _, s := range []string{"", "*", "bots:*", "*:read", "bots", "Bots:read", "bots:read ", "admin:*", "bots:delete"} {
		if keystore.ValidScope(s) {
			t.Errorf("ValidScope(%q) = true", s)
		}
	}
}

func TestExpandScopes(t *testing.T) {
	reads := []string{"bots:read", "integrations:read", "channels:read", "conversations:read", "agent-loops:read"}
	writes := []string{"bots:write", "integrations:write", "channels:write", "conversations:write", "agent-loops:write"}
	for _, tc := range []struct {
		in   []string
		want []string
	}{
		{[]string{"bots:read"}, []string{"bots:read"}},
		{[]string{"admin"}, []string{"admin"}},
		{[]string{"agent-loops:write"}, []string{"agent-loops:write"}},
		{[]string{"bots:*"}, []string{"bots:read", "bots:write"}},
		{[]string{"agent-loops:*"}, []string{"agent-loops:read", "agent-loops:write"}},
		{[]string{"conversations:*"}, []string{"conversations:read", "conversations:write"}},
		{[]string{"*:read"}, reads},
		{[]string{"*:write"}, writes},
		{[]string{"*"}, canonical},
		{[]string{"admin", "*"}, canonical},
		{[]string{"*:write", "*:read"}, canonical[:10]},
		{[]string{"bots:write,bots:read"}, []string{"bots:read", "bots:write"}},
		{[]string{"bots:write bots:read"}, []string{"bots:read", "bots:write"}},
		{[]string{"channels:write, bots:read"}, []string{"bots:read", "channels:write"}},
		{[]string{" ,bots:read,, ,"}, []string{"bots:read"}},
		{[]string{"bots:read\tchannels:read\nadmin"}, []string{"bots:read", "channels:read", "admin"}},
		{[]string{"admin", "channels:read", "bots:write"}, []string{"bots:write", "channels:read", "admin"}},
		{[]string{"bots:read", "bots:read", "bots:*", "bots:write"}, []string{"bots:read", "bots:write"}},
		{[]string{"*:read", "bots:read", "bots:*"}, []string{"bots:read", "bots:write", "integrations:read", "channels:read", "conversations:read", "agent-loops:read"}},
	} {
		got, err := keystore.ExpandScopes(tc.in)
		if err != nil {
			t.Errorf("ExpandScopes(%q): %v", tc.in, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("ExpandScopes(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, in := range [][]string{nil, {}, {""}, {" , "}} {
		if got, err := keystore.ExpandScopes(in); err != nil || len(got) != 0 {
			t.Errorf("ExpandScopes(%q) = %q, %v; want no scopes", in, got, err)
		}
	}
}

func TestExpandScopesDoesNotAliasAllScopes(t *testing.T) {
	got, err := keystore.ExpandScopes([]string{"*"})
	if err != nil {
		t.Fatal(err)
	}
	got[0] = "changed"
	if keystore.AllScopes[0] != "bots:read" {
		t.Fatalf("changing ExpandScopes' result changed AllScopes: %q", keystore.AllScopes)
	}
}

func TestExpandScopesUnknown(t *testing.T) {
	for _, tc := range []struct{ in, nearest string }{
		{"bot:read", "bots:read"},
		{"chanels:write", "channels:write"},
		{"conversation:read", "conversations:read"},
		{"agent_loops:read", "agent-loops:read"},
		{"agentloops:write", "agent-loops:write"},
		{"integration:write", "integrations:write"},
		{"BOTS:READ", "bots:read"},
		{"Admin", "admin"},
		{"admin:*", "admin"},
		{"admins", "admin"},
		{"bot:*", "bots:*"},
		{"*:raed", "*:read"},
		{"*:wirte", "*:write"},
		{"**", "*"},
	} {
		for _, args := range [][]string{{tc.in}, {"bots:read", tc.in}, {"bots:read," + tc.in + ",admin"}} {
			got, err := keystore.ExpandScopes(args)
			if got != nil {
				t.Errorf("ExpandScopes(%q) returned scopes %q with an error", args, got)
			}
			e := wantCode(t, err, keystore.EINVALID)
			if !strings.Contains(e.Message, `unknown scope "`+tc.in+`"`) {
				t.Errorf("ExpandScopes(%q) message %q does not name %q", args, e.Message, tc.in)
			}
			if !strings.Contains(e.Message, "did you mean "+tc.nearest+"?") {
				t.Errorf("ExpandScopes(%q) message %q does not suggest %s", args, e.Message, tc.nearest)
			}
		}
		if got := keystore.NearestScope(tc.in); got != tc.nearest {
			t.Errorf("NearestScope(%q) = %q, want %q", tc.in, got, tc.nearest)
		}
	}
	for _, in := range []string{"bots", "bots:", ":read", ":", "*:admin", "admin:read", "bots:delete", "bots:read:write", "bots:*:read", "x", "bötś:read", strings.Repeat("z", 5000)} {
		_, err := keystore.ExpandScopes([]string{in})
		e := wantCode(t, err, keystore.EINVALID)
		if len(e.Message) > 200 {
			t.Errorf("message for a %d-byte scope is %d bytes long", len(in), len(e.Message))
		}
		if !strings.Contains(e.Message, "did you mean ") {
			t.Errorf("ExpandScopes(%q) message %q suggests nothing", in, e.Message)
		}
	}
}

func TestGrants(t *testing.T) {
	for _, tc := range []struct {
		held []string
		want string
		ok   bool
	}{
		{[]string{"admin"}, "bots:write", true},
		{[]string{"admin"}, "agent-loops:read", true},
		{[]string{"admin"}, "admin", true},
		{[]string{"bots:read"}, "bots:read", true},
		{[]string{"bots:write"}, "bots:read", false}, // :write does not imply :read
		{[]string{"bots:read"}, "bots:write", false},
		{[]string{"bots:read", "bots:write"}, "admin", false},
		{canonical[:10], "admin", false},
		{[]string{"channels:read"}, "bots:read", false},
		{[]string{"bots:*"}, "bots:read", false}, // held scopes are expanded, never patterns
		{nil, "bots:read", false},
	} {
		if got := keystore.Grants(tc.held, tc.want); got != tc.ok {
			t.Errorf("Grants(%q, %q) = %v, want %v", tc.held, tc.want, got, tc.ok)
		}
	}
}

func TestMissingScopes(t *testing.T) {
	for _, tc := range []struct {
		held, want, missing []string
	}{
		{[]string{"bots:write"}, []string{"bots:read", "bots:write"}, []string{"bots:read"}},
		{[]string{"admin"}, canonical, []string{}},
		{[]string{"bots:read"}, nil, []string{}},
		{nil, []string{"channels:write", "bots:read"}, []string{"channels:write", "bots:read"}},
		{canonical[:10], []string{"admin", "bots:read"}, []string{"admin"}},
	} {
		got := keystore.MissingScopes(tc.held, tc.want)
		if got == nil || !slices.Equal(got, tc.missing) {
			t.Errorf("MissingScopes(%q, %q) = %#v, want %q", tc.held, tc.want, got, tc.missing)
		}
	}
}

func FuzzExpandScopes(f *testing.F) {
	for _, s := range []string{
		"", "*", "bots:*", "*:read", "*:write", "*:*", "admin", "admin:*", "bots:read,bots:write",
		"bots:read bots:write", "bot:read", "chanels:write", ",,", "bots:read\tadmin", ":", "*:",
		":*", "agent-loops:*,*:read", "BOTS:READ", "bots:read\x00", "é:*",
	} {
		f.Add(s, "")
	}
	f.Add("bots:read", "channels:*")
	f.Add("*:write", "admin bots:read")
	f.Fuzz(func(t *testing.T, a, b string) {
		got, err := keystore.ExpandScopes([]string{a, b})
		if err != nil {
			e := wantCode(t, err, keystore.EINVALID)
			if got != nil || !strings.HasPrefix(e.Message, "unknown scope ") {
				t.Fatalf("ExpandScopes(%q, %q) = %q, %q", a, b, got, e.Message)
			}
			i := strings.LastIndex(e.Message, "did you mean ")
			if i < 0 || !strings.HasSuffix(e.Message, "?)") {
				t.Fatalf("ExpandScopes(%q, %q) message %q suggests nothing", a, b, e.Message)
			}
			suggestion := strings.TrimSuffix(e.Message[i+len("did you mean "):], "?)")
			if _, err := keystore.ExpandScopes([]string{suggestion}); err != nil {
				t.Fatalf("ExpandScopes(%q, %q) suggests %q, which is not valid: %v", a, b, suggestion, err)
			}
			return
		}
		// Only valid scopes, strictly in canonical order (so sorted, no dupes).
		last := -1
		for _, s := range got {
			i := slices.Index(canonical, s)
			if i <= last {
				t.Fatalf("ExpandScopes(%q, %q) = %q: unknown, duplicate or out of order %q", a, b, got, s)
			}
			last = i
		}
		// Expanding the result again changes nothing.
		again, err := keystore.ExpandScopes(got)
		if err != nil || !slices.Equal(again, got) {
			t.Fatalf("ExpandScopes(%q) = %q, %v; want it unchanged", got, again, err)
		}
		// Every plain scope named in the input is in the result.
		for _, field := range strings.FieldsFunc(a+","+b, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
			if keystore.ValidScope(field) && !slices.Contains(got, field) {
				t.Fatalf("ExpandScopes(%q, %q) = %q, lost %q", a, b, got, field)
			}
		}
	})
}

// A scope filter (list --scope, rotate --scope) matches a key when the key
// holds any scope the filter covers, or admin.
func FuzzFilterScopes(f *testing.F) {
	for _, s := range []string{"bots:*", "*:read", "*", "admin", "bots:read", "bots:rea", "", ",", "bots:read,channels:*", "robots:*", "*:*:*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, filter string) {
		got, err := keystore.FilterScopes(filter)
		if err != nil {
			wantCode(t, err, keystore.EINVALID)
			if got != nil {
				t.Fatalf("FilterScopes(%q) = %q with an error", filter, got)
			}
			return
		}
		if !slices.Contains(got, keystore.ScopeAdmin) {
			t.Fatalf("FilterScopes(%q) = %q: an admin key must match every filter", filter, got)
		}
		expanded, err := keystore.ExpandScopes([]string{filter})
		if err != nil {
			t.Fatalf("FilterScopes(%q) accepted what ExpandScopes refuses: %v", filter, err)
		}
		for _, s := range got {
			if !keystore.ValidScope(s) {
				t.Fatalf("FilterScopes(%q) = %q: %q is not a scope", filter, got, s)
			}
			if s != keystore.ScopeAdmin && !slices.Contains(expanded, s) {
				t.Fatalf("FilterScopes(%q) = %q: %q is not covered", filter, got, s)
			}
		}
		// A key holding any scope of the expansion matches.
		for _, s := range expanded {
			if !slices.Contains(got, s) {
				t.Fatalf("FilterScopes(%q) = %q lacks %q", filter, got, s)
			}
		}
	})
}
