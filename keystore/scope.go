package keystore

import (
	"math/bits"
	"slices"
	"strings"
	"unicode"
)

// ScopeAdmin grants every scope.
const ScopeAdmin = "admin"

// AllScopes lists the platform's scopes in their canonical order.
var AllScopes = []string{
	"bots:read", "bots:write",
	"integrations:read", "integrations:write",
	"channels:read", "channels:write",
	"conversations:read", "conversations:write",
	"agent-loops:read", "agent-loops:write",
	ScopeAdmin,
}

// ValidScope reports whether s is one of AllScopes (not a pattern).
func ValidScope(s string) bool { return slices.Contains(AllScopes, s) }

// ExpandScopes turns scopes and patterns ("bots:*", "*:read", "*") into a
// sorted, de-duplicated list of scopes in canonical order. Each argument may
// also hold several scopes separated by commas or white space. An unknown
// scope is an EINVALID error naming the nearest valid scope or pattern.
func ExpandScopes(args []string) ([]string, error) {
	if out, ok := expandNames(args); ok {
		return out, nil
	}
	return expandPatterns(args)
}

func expandPatterns(args []string) ([]string, error) {
	want := map[string]bool{}
	for _, arg := range args {
		for _, s := range strings.FieldsFunc(arg, isScopeSeparator) {
			matched, err := expandScope(s)
			if err != nil {
				return nil, err
			}
			for _, m := range matched {
				want[m] = true
			}
		}
	}
	var out []string
	for _, s := range AllScopes {
		if want[s] {
			out = append(out, s)
		}
	}
	return out, nil
}

// expandNames is ExpandScopes for the usual case, where each argument is
// one scope by its name (as in every record of an import): the same
// result, without a map. It reports false for anything else.
func expandNames(args []string) ([]string, bool) {
	if len(args) == 0 || len(AllScopes) > 32 {
		return nil, false
	}
	var want uint32 // bit i: AllScopes[i]
	for _, arg := range args {
		i := slices.Index(AllScopes, arg)
		if i < 0 {
			return nil, false
		}
		want |= 1 << i
	}
	out := make([]string, 0, bits.OnesCount32(want))
	for i, s := range AllScopes {
		if want&(1<<i) != 0 {
			out = append(out, s)
		}
	}
	return out, true
}

// isScopeSeparator splits lists such as "bots:read, channels:read" and
// newline-separated lists read from a file or variable.
func isScopeSeparator(r rune) bool { return r == ',' || unicode.IsSpace(r) }

func expandScope(s string) ([]string, error) {
	if s == "*" {
		return AllScopes, nil
	}
	if ValidScope(s) {
		return []string{s}, nil
	}
	resource, action, ok := strings.Cut(s, ":")
	if ok && (resource == "*" || action == "*") {
		var out []string
		for _, c := range AllScopes {
			r, a, _ := strings.Cut(c, ":")
			if a != "" && (resource == "*" || resource == r) && (action == "*" || action == a) {
				out = append(out, c)
			}
		}
		if len(out) > 0 {
			return out, nil
		}
	}
	return nil, UnknownScope(s)
}

// UnknownScope is the EINVALID error for s, which is not a scope: it names
// the nearest scope, and never repeats s when it holds a secret.
func UnknownScope(s string) error {
	if err := CheckScope(s); err != nil {
		return err
	}
	return Errorf(EINVALID, "unknown scope %s (did you mean %s?)", Quote(s), NearestScope(s))
}

// Grants reports whether a key holding scopes may act with scope want.
// admin grants everything; :write does not imply :read.
func Grants(scopes []string, want string) bool {
	return slices.Contains(scopes, ScopeAdmin) || slices.Contains(scopes, want)
}

// MissingScopes returns the scopes of want that held does not grant.
func MissingScopes(held, want []string) []string {
	missing := []string{}
	for _, w := range want {
		if !Grants(held, w) {
			missing = append(missing, w)
		}
	}
	return missing
}

// NearestScope returns the valid scope or pattern closest to s by edit distance.
func NearestScope(s string) string {
	candidates := append(slices.Clone(AllScopes), "*")
	for _, c := range AllScopes {
		r, a, ok := strings.Cut(c, ":")
		if !ok {
			continue
		}
		for _, p := range []string{r + ":*", "*:" + a} {
			if !slices.Contains(candidates, p) {
				candidates = append(candidates, p)
			}
		}
	}
	lower := strings.ToLower(s)
	best, bestDist := "", -1
	for _, c := range candidates {
		if d := editDistance(lower, c); bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 100 {
		a = a[:100]
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// FilterScopes turns the scope of a list filter, a scope, a pattern such
// as bots:* or a comma-separated list of them, into the scopes a key may
// hold to match: those it covers, and admin, which grants them all.
// EINVALID for an unknown scope.
func FilterScopes(filter string) ([]string, error) {
	scopes, err := ExpandScopes([]string{filter})
	if err != nil {
		return nil, err
	}
	if len(scopes) == 0 {
		return nil, Errorf(EINVALID, "empty scope filter")
	}
	if !slices.Contains(scopes, ScopeAdmin) {
		scopes = append(scopes, ScopeAdmin)
	}
	return scopes, nil
}
