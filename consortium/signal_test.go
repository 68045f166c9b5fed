package consortium_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/hashfed/hashfed/consortium"
)

const pdqHex = "f8f8f0cee0f4a84f06370a22028f67f0b36e2ed596621e1d33e6b39c4e9c9b22"

func TestParseSignal(t *testing.T) {
	tests := []struct {
		typ, value string
		want       string // canonical String(), or "" for an error
		err        error
		msg        string
	}{
		{"pdq", pdqHex, "pdq " + pdqHex, nil, ""},
		{"PDQ", strings.ToUpper(pdqHex), "pdq " + pdqHex, nil, ""},
		{"pdq", "  " + pdqHex + "\n", "pdq " + pdqHex, nil, ""},
		{"pdq", pdqHex[:63], "", consortium.ErrInvalidSignal, "63 characters, want 64"},
		{"pdq", pdqHex + "0", "", consortium.ErrInvalidSignal, "65 characters"},
		{"pdq", "g" + pdqHex[1:], "", consortium.ErrInvalidSignal, "'g' at position 0"},
		{"pdq", strings.Repeat("0", 64), "", consortium.ErrInvalidSignal, "0 bits set"},
		{"pdq", strings.Repeat("f", 64), "", consortium.ErrInvalidSignal, "256 bits set"},
		{"md5", "D41D8CD98F00B204E9800998ECF8427E", "md5 d41d8cd98f00b204e9800998ecf8427e", nil, ""},
		{"md5", "d41d8cd98f00b204e9800998ecf8427", "", consortium.ErrInvalidSignal, "want 32 hex digits"},
		{"sha256", strings.Repeat("ab", 32), "sha256 " + strings.Repeat("ab", 32), nil, ""},
		{"sha256", strings.Repeat("ab", 16), "", consortium.ErrInvalidSignal, "want 64 hex digits"},
		{"url", "sha256:" + strings.Repeat("cd", 32), "url sha256:" + strings.Repeat("cd", 32), nil, ""},
		{"url", "sha256:xyz", "", consortium.ErrInvalidSignal, "want 64 hex digits"},
		{"url", "ftp://example.com/x", "", consortium.ErrInvalidSignal, "scheme"},
		{"vpdq", "00", "", consortium.ErrInvalidSignal, "want 64 hex digits"},
		{"vpdq", strings.Repeat("ab", 32), "vpdq " + strings.Repeat("ab", 32), nil, ""},
		{"tmk", "00", "", consortium.ErrUnknownSignalType, "tmk"},
		{"", "00", "", consortium.ErrUnknownSignalType, "known: pdq, md5, sha256, url, vpdq"},
	}
	for _, tc := range tests {
		t.Run(tc.typ+"/"+tc.value, func(t *testing.T) {
			s, err := consortium.ParseSignal(tc.typ, tc.value)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("got %v, want %v mentioning %q", err, tc.err, tc.msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			if s.String() != tc.want {
				t.Errorf("got %q, want %q", s.String(), tc.want)
			}
			back, err := consortium.SignalFromProto(s.Proto())
			if err != nil || back != s {
				t.Errorf("proto round trip: got %v, %v", back, err)
			}
			again, err := consortium.ParseSignal(s.Type.String(), s.Text())
			if err != nil || again != s {
				t.Errorf("text round trip: got %v, %v", again, err)
			}
		})
	}
}

func TestURLSignalIsHashOfCanonicalForm(t *testing.T) {
	s, err := consortium.ParseSignal("url", "HTTPS://Example.COM:443/a/./b/../c?x=1#frag")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("example.com/a/c?x=1"))
	if got, want := s.Text(), "sha256:"+hex.EncodeToString(sum[:]); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestCanonicalURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://example.com", "example.com/"},
		{"https://example.com/", "example.com/"},
		{"example.com/path", "example.com/path"},
		{"//example.com/path", "example.com/path"},
		{"HTTP://EXAMPLE.com/Path", "example.com/Path"},
		{"http://example.com.:80/", "example.com/"},
		{"http://example.com:8080/", "example.com:8080/"},
		{"http://user:pw@example.com/x", "example.com/x"},
		{"http://example.com/x#section", "example.com/x"},
		{"http://example.com/a/../b/./c", "example.com/b/c"},
		{"http://example.com/%7euser/%41%2f%2fx", "example.com/~user/A%2F%2Fx"},
		{"http://example.com/a%2fb", "example.com/a%2Fb"},
		{"http://example.com/ä", "example.com/%C3%A4"},
		{"http://example.com/x?", "example.com/x"},
		{"http://example.com/x?b=2&a=1", "example.com/x?b=2&a=1"},
		{"http://example.com/x?q=a%20b", "example.com/x?q=a%20b"},
		{"http://bücher.example/", "xn--bcher-kva.example/"},
		{"http://[::1]:8080/x", "[::1]:8080/x"},
		{"http://192.168.0.1/x", "192.168.0.1/x"},
	}
	for _, tc := range tests {
		got, err := consortium.CanonicalURL(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("CanonicalURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "http://exa mple.com/", "mailto:x@example.com", "http:///path", "javascript:alert(1)", "http://example.com/\x00", "not-a-url", "word/path"} {
		if _, err := consortium.CanonicalURL(bad); !errors.Is(err, consortium.ErrInvalidSignal) {
			t.Errorf("CanonicalURL(%q) = %v, want ErrInvalidSignal", bad, err)
		}
	}
}

func TestCanonicalLabel(t *testing.T) {
	tests := []struct{ in, want, errMsg string }{
		{"glorification-of-terrorist-acts", "behaviour:glorification-of-terrorist-acts", ""},
		{"behavior:threat-incitement", "behaviour:threat-incitement", ""},
		{"behaviour:recruitment-instruction", "behaviour:recruitment-instruction", ""},
		{"behaviour:cute-cats", "", "unknown behaviour"},
		{"content:manifesto", "content:manifesto", ""},
		{"content:poem", "", "unknown content kind"},
		{"incident:christchurch-2019", "incident:christchurch-2019", ""},
		{"incident:Bad", "", "incident id"},
		{"entity:unsc-2024-05/QDe.115", "entity:unsc-2024-05/QDe.115", ""},
		{"entity:unsc", "", "entity:<list>/<id>"},
		{"lang:ar", "lang:ar", ""},
		{"source:moderator-review", "source:moderator-review", ""},
		{"Lang:ar", "", "namespace"},
		{"lang:", "", "value"},
		{"lang:a b", "", "value"},
		{"nocolon", "", "not namespace:value"},
	}
	for _, tc := range tests {
		got, err := consortium.CanonicalLabel(tc.in)
		if tc.errMsg != "" {
			if !errors.Is(err, consortium.ErrInvalidLabel) || !strings.Contains(err.Error(), tc.errMsg) {
				t.Errorf("CanonicalLabel(%q) = %v, want ErrInvalidLabel mentioning %q", tc.in, err, tc.errMsg)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("CanonicalLabel(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	ls, err := consortium.CanonicalLabels([]string{"lang:ar", "threat-incitement", "lang:ar"})
	if err != nil || strings.Join(ls, ",") != "behaviour:threat-incitement,lang:ar" {
		t.Errorf("CanonicalLabels: got %v, %v", ls, err)
	}
}
