package consortium_test

import (
	"testing"

	"github.com/hashfed/hashfed/consortium"
)

// TestCanonicalURLPathAsWritten: the path is canonicalized from its text as written, so an escaped
// reserved character keeps its escape whatever else the path holds (Go's re-escaping of a parsed
// path turned "%2F" into "/" and "!" into "%21" when the path also held a raw non-ASCII character),
// and the steps run in PROTOCOL.md's order (escapes, then dot segments).
func TestCanonicalURLPathAsWritten(t *testing.T) {
	tests := []struct{ in, want string }{
		{"x.com/é%2Fb", "x.com/%C3%A9%2Fb"},
		{"x.com/%C3%A9%2Fb", "x.com/%C3%A9%2Fb"},
		{"x.com/!é", "x.com/!%C3%A9"},
		{"x.com/!", "x.com/!"},
		{"x.com/a%21b", "x.com/a%21b"},
		{"x.com/é/../b", "x.com/b"},
		{"example.com/a/%2e%2e/b/%7e%2f", "example.com/b/~%2F"},
		{"http://x.com/?a%zz", "x.com/?a%25zz"},
		{"http://[::ffff:1.2.3.4]:443/", "1.2.3.4/"},
		{"x.com/a\"b<c>", "x.com/a%22b%3Cc%3E"},
	}
	for _, tc := range tests {
		got, err := consortium.CanonicalURL(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("CanonicalURL(%q): got %q, %v, want %q", tc.in, got, err, tc.want)
		}
	}
}
