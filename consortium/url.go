package consortium

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"golang.org/x/net/idna"
)

// MaxURLLength bounds the URLs that [CanonicalURL] accepts.
const MaxURLLength = 8192

// CanonicalURL returns the canonical form of a URL, the text whose SHA-256 is a url signal's value.
// The rules (docs/PROTOCOL.md, "URL canonicalization"):
//
//  1. Surrounding white space is trimmed; white space or control characters inside are refused.
//  2. A URL without a scheme is read as http://. Only http and https are accepted, and the scheme is
//     not part of the canonical form: both name the same content.
//  3. User information and the fragment are dropped.
//  4. The host is lowercased, converted to its IDNA ASCII form (punycode), and trailing dots are
//     removed; an IPv6 literal keeps its brackets. Ports 80 and 443 are dropped; others are kept.
//  5. In the path (as written) and query, percent-escapes of unreserved characters (A-Z a-z 0-9 -
//     . _ ~) are decoded, every other escape is written with uppercase hex, and characters outside
//     the unreserved, sub-delimiter and ":@/?" sets are percent-encoded (bytes of UTF-8 included).
//  6. Then "." and ".." path segments are resolved, and the path is "/" when empty.
//  7. The query is kept in its original order; an empty query ("?" alone) is dropped.
//
// The canonical form is host[:port] + path [+ "?" + query].
func CanonicalURL(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", fmt.Errorf("%w: empty URL", ErrInvalidSignal)
	}
	if len(s) > MaxURLLength {
		return "", fmt.Errorf("%w: URL is %d bytes, at most %d", ErrInvalidSignal, len(s), MaxURLLength)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return "", fmt.Errorf("%w: URL has white space or a control character at position %d", ErrInvalidSignal, i)
		}
	}
	schemeless := !strings.Contains(s, "://")
	if schemeless {
		if sc, rest, ok := strings.Cut(s, ":"); ok && isScheme(sc) && !startsWithDigit(rest) {
			return "", fmt.Errorf("%w: URL scheme %q, want http or https", ErrInvalidSignal, sc)
		}
		s = "http://" + strings.TrimPrefix(s, "//")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%w: URL %q: %v", ErrInvalidSignal, truncate(raw, 80), err)
	}
	if sc := strings.ToLower(u.Scheme); sc != "http" && sc != "https" {
		return "", fmt.Errorf("%w: URL scheme %q, want http or https", ErrInvalidSignal, u.Scheme)
	}
	host, port := u.Hostname(), u.Port()
	host = strings.TrimRight(strings.ToLower(host), ".")
	if host == "" {
		return "", fmt.Errorf("%w: URL %q has no host", ErrInvalidSignal, truncate(raw, 80))
	}
	// A word is not taken for a host: "not-a-url" is a typo, not a page. This holds with a scheme
	// too: the canonical form drops the scheme, and must canonicalize again to itself.
	wordHost := func(host string) error {
		if strings.Contains(host, ".") || strings.Contains(host, ":") || host == "localhost" {
			return nil
		}
		if schemeless {
			return fmt.Errorf("%w: %q is not a URL: no scheme, and %q is not a domain name or an IP address (want https://example.com/page or example.com/page)", ErrInvalidSignal, truncate(raw, 80), truncate(host, 80))
		}
		return fmt.Errorf("%w: URL %q: host %q is not a domain name or an IP address (want a name with a dot, such as example.com)", ErrInvalidSignal, truncate(raw, 80), truncate(host, 80))
	}
	if err := wordHost(host); err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.To4() == nil {
			host = "[" + ip.String() + "]"
		} else {
			host = ip.String()
		}
	} else {
		ascii, err := idna.Lookup.ToASCII(host)
		if err != nil {
			return "", fmt.Errorf("%w: URL host %q: %v", ErrInvalidSignal, truncate(host, 80), err)
		}
		host = strings.TrimRight(ascii, ".")
		if host == "" {
			// IDNA maps some characters (default ignorables such as U+034F) to nothing.
			return "", fmt.Errorf("%w: URL %q has no host", ErrInvalidSignal, truncate(raw, 80))
		}
		// Nor may what IDNA leaves be a word ("00.\u034f" is "00"): the canonical form must
		// canonicalize again to itself.
		if err := wordHost(host); err != nil {
			return "", err
		}
	}
	if port != "" && port != "80" && port != "443" {
		host += ":" + port
	}
	// The path as written: Go keeps it in RawPath unless it equals its own escaping of the decoded
	// path. EscapedPath would re-escape the decoded path when the text holds characters Go does not
	// accept in a path (raw UTF-8, quotes, ...), which loses escapes such as %2F.
	written := u.RawPath
	if written == "" {
		written = u.EscapedPath()
	}
	path := normalizeEscapes(written, false)
	path = removeDotSegments(path)
	if path == "" {
		path = "/"
	}
	out := host + path
	if q := normalizeEscapes(u.RawQuery, true); q != "" {
		out += "?" + q
	}
	return out, nil
}

// isScheme reports whether s has the form of a URL scheme (RFC 3986: a letter, then letters,
// digits, "+", "-" or ".").
func isScheme(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func startsWithDigit(s string) bool { return s != "" && s[0] >= '0' && s[0] <= '9' }

// isUnreserved reports RFC 3986 unreserved characters.
func isUnreserved(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// isKept reports the characters kept literally besides unreserved ones: sub-delimiters, ':', '@',
// '/', and in a query also '?'.
func isKept(c byte, query bool) bool {
	switch c {
	case '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@', '/':
		return true
	case '?':
		return query
	}
	return false
}

func fromHex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// normalizeEscapes applies rule 6 of [CanonicalURL] to an escaped path or query.
func normalizeEscapes(s string, query bool) string {
	const upper = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) {
			hi, ok1 := fromHex(s[i+1])
			lo, ok2 := fromHex(s[i+2])
			if ok1 && ok2 {
				d := hi<<4 | lo
				if isUnreserved(d) {
					b.WriteByte(d)
				} else {
					b.WriteByte('%')
					b.WriteByte(upper[d>>4])
					b.WriteByte(upper[d&15])
				}
				i += 2
				continue
			}
		}
		if isUnreserved(c) || isKept(c, query) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upper[c>>4])
		b.WriteByte(upper[c&15])
	}
	return b.String()
}

// removeDotSegments resolves "." and ".." path segments (RFC 3986 section 5.2.4).
func removeDotSegments(p string) string {
	if !strings.Contains(p, ".") {
		return p
	}
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	r := strings.Join(out, "/")
	if strings.HasPrefix(p, "/") && !strings.HasPrefix(r, "/") {
		r = "/" + r
	}
	return r
}
