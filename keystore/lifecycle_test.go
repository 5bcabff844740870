package keystore_test

import (
	"slices"
	"testing"

	"github.com/chatbotplatform/keyctl/keystore"
)

func TestUpdateScopes(t *testing.T) {
	cases := []struct {
		name                 string
		current, set, remove []string
		want                 []string
		bad                  bool
	}{
		{"unchanged", []string{"bots:read"}, nil, nil, []string{"bots:read"}, false},
		{"replace with patterns", []string{"bots:read"}, []string{"channels:*", "bots:read"}, nil, []string{"bots:read", "channels:read", "channels:write"}, false},
		{"narrow", []string{"bots:read", "bots:write"}, nil, []string{"bots:write"}, []string{"bots:read"}, false},
		{"narrow by pattern", []string{"bots:read", "bots:write", "channels:read"}, nil, []string{"bots:*"}, []string{"channels:read"}, false},
		{"narrow admin", []string{"admin"}, nil, []string{"*:write"}, []string{"bots:read", "integrations:read", "channels:read", "conversations:read", "agent-loops:read"}, false},
		{"drop admin", []string{"admin", "bots:read"}, nil, []string{"admin"}, []string{"bots:read"}, false},
		{"replace then narrow", []string{"admin"}, []string{"bots:*"}, []string{"bots:write"}, []string{"bots:read"}, false},
		{"remove a scope not held", []string{"bots:read"}, nil, []string{"bots:write"}, nil, true},
		{"remove every scope", []string{"bots:read"}, nil, []string{"bots:read"}, nil, true},
		{"set nothing", []string{"bots:read"}, []string{}, nil, nil, true},
		{"unknown scope", []string{"bots:read"}, []string{"bots:delete"}, nil, nil, true},
		{"unknown removal", []string{"bots:read"}, nil, []string{"bot:read"}, nil, true},
	}
	for _, c := range cases {
		got, err := keystore.UpdateScopes(c.current, c.set, c.remove)
		if c.bad {
			if keystore.ErrorCode(err) != keystore.EINVALID {
				t.Errorf("%s: %q, %v; want an EINVALID error", c.name, got, err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}
