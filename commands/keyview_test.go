package commands

import (
	"testing"

	"github.com/chatbotplatform/keyctl/keystore"
)

func TestSummarizeScopes(t *testing.T) {
	for _, c := range []struct {
		scopes []string
		max    int
		want   string
	}{
		{keystore.AllScopes, 0, "all"},
		{keystore.AllScopes, 3, "all"},
		{[]string{"admin"}, 0, "admin"},
		{[]string{"bots:read", "bots:write"}, 0, "bots:*"},
		{[]string{"bots:read", "bots:write", "channels:read"}, 0, "bots:*, channels:read"},
		{[]string{"bots:read", "bots:write", "channels:read", "conversations:read", "agent-loops:write"}, 12, "bots:*, +3"},
		{[]string{"bots:read", "bots:write", "channels:read", "conversations:read", "agent-loops:write"}, 30, "bots:*, channels:read, +2"},
		{[]string{"conversations:write"}, 10, "conversat…"},
	} {
		if got := summarizeScopes(c.scopes, c.max); got != c.want {
			t.Errorf("summarizeScopes(%q, %d) = %q, want %q", c.scopes, c.max, got, c.want)
		}
	}
}
