package consortium

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Behaviours is hashfed's behavioural taxonomy, modelled on the categories of GIFCT's early
// transparency reports. A behaviour label is written "behaviour:<name>".
var Behaviours = []string{
	"imminent-credible-threat",
	"graphic-violence-against-defenseless",
	"glorification-of-terrorist-acts",
	"recruitment-instruction",
	"threat-incitement",
}

// ContentKinds are the values of the content: namespace.
var ContentKinds = []string{"manifesto", "branded-publication"}

// MaxLabels bounds the labels on one add.
const MaxLabels = 32

// CanonicalLabel validates a label and returns its canonical form. Accepted forms:
//
//   - "behaviour:<name>" with a name from [Behaviours]; "behavior:<name>" and the bare name are
//     accepted on input and written as "behaviour:<name>";
//   - "content:manifesto", "content:branded-publication";
//   - "incident:<id>", id of 1-64 characters of [a-z0-9._-] starting with a letter or digit;
//   - "entity:<list>/<id>", naming an entity on a versioned designation list (e.g.
//     "entity:unsc-2024-05/QDe.115"): list of [a-z0-9._@-], id of [A-Za-z0-9._-], each 1-64;
//   - "<namespace>:<value>" for any other namespace of [a-z][a-z0-9-]{0,31}, value 1-128 bytes of
//     UTF-8 with no white space or control characters.
//
// Unknown names in the known namespaces (behaviour, content) are refused.
func CanonicalLabel(l string) (string, error) {
	l = strings.TrimSpace(l)
	if slices.Contains(Behaviours, l) {
		return "behaviour:" + l, nil
	}
	ns, v, ok := strings.Cut(l, ":")
	if !ok {
		return "", fmt.Errorf("%w: %q is not namespace:value or a behaviour name (%s)", ErrInvalidLabel, truncate(l, 60), strings.Join(Behaviours, ", "))
	}
	switch ns {
	case "behaviour", "behavior":
		if !slices.Contains(Behaviours, v) {
			return "", fmt.Errorf("%w: unknown behaviour %q (known: %s)", ErrInvalidLabel, truncate(v, 60), strings.Join(Behaviours, ", "))
		}
		if ns == "behaviour" {
			return l, nil
		}
		return "behaviour:" + v, nil
	case "content":
		if !slices.Contains(ContentKinds, v) {
			return "", fmt.Errorf("%w: unknown content kind %q (known: %s)", ErrInvalidLabel, truncate(v, 60), strings.Join(ContentKinds, ", "))
		}
		return l, nil
	case "incident":
		if !validToken(v, 64, false, false) {
			return "", fmt.Errorf("%w: incident id %q must be 1-64 characters of a-z 0-9 . _ - starting with a letter or digit", ErrInvalidLabel, truncate(v, 60))
		}
		return l, nil
	case "entity":
		list, id, ok := strings.Cut(v, "/")
		if !ok || !validToken(list, 64, false, true) || !validToken(id, 64, true, false) {
			return "", fmt.Errorf("%w: %q must be entity:<list>/<id> (list of a-z 0-9 . _ @ -, id of A-Z a-z 0-9 . _ -)", ErrInvalidLabel, truncate(l, 60))
		}
		return l, nil
	}
	if !validNamespace(ns) {
		return "", fmt.Errorf("%w: namespace %q must be a letter then up to 31 of a-z 0-9 -", ErrInvalidLabel, truncate(ns, 40))
	}
	if v == "" || len(v) > 128 || !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return "", fmt.Errorf("%w: value of %q must be 1-128 bytes of UTF-8 without white space", ErrInvalidLabel, truncate(l, 60))
	}
	return l, nil
}

// CanonicalLabels canonicalizes, sorts and de-duplicates labels.
func CanonicalLabels(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, l := range in {
		c, err := CanonicalLabel(l)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > MaxLabels {
		return nil, fmt.Errorf("%w: %d labels, at most %d", ErrInvalidLabel, len(out), MaxLabels)
	}
	return out, nil
}

func validNamespace(ns string) bool {
	if ns == "" || len(ns) > 32 || ns[0] < 'a' || ns[0] > 'z' {
		return false
	}
	for i := 0; i < len(ns); i++ {
		c := ns[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validToken checks 1..max characters of [a-z0-9._-] (upper case too when upper, '@' when at),
// starting with a letter or digit.
func validToken(s string, max int, upper, at bool) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || upper && c >= 'A' && c <= 'Z'
		if i == 0 && !alnum {
			return false
		}
		if !alnum && c != '.' && c != '_' && c != '-' && !(at && c == '@') {
			return false
		}
	}
	return true
}
