package hashlist

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"
)

// python-threatexchange (pytx) 1.2.16 names its signal types after their classes: VideoMD5Signal
// is "video_md5", VideoSHA256Signal "video_sha256", PdqSignal "pdq", URLSignal "url" (the URL
// itself). hashfed's md5 and sha256 are digests of any file's bytes, which pytx only has for
// videos; hashfed's url is the SHA-256 of the canonical URL, which pytx has no type for.
// pytxNames maps hashfed's names to the names the te and pytx-csv writers use.
var pytxNames = map[string]string{
	"md5":    "video_md5",
	"sha256": "video_sha256",
	"pdq":    "pdq",
	"url":    "url",
}

// HashedURLType is the type name te and pytx-csv write for a url signal held only as the
// SHA-256 of its canonical form ("url sha256:<hex>" in hashfed): pytx has no such type, so pytx
// and HMA skip these lines instead of reading "sha256:<hex>" as a URL.
const HashedURLType = "hashfed_url_sha256"

// NormalType returns hashfed's name for a signal type written as t (case ignored) and the value
// as hashfed writes it: pytx's video_md5 and video_sha256 become md5 and sha256, and
// hashfed_url_sha256 <hex> becomes url sha256:<hex>. Other names come back lowercased, unchecked.
func NormalType(t, value string) (string, string) {
	t = strings.ToLower(t)
	switch t {
	case "video_md5":
		return "md5", value
	case "video_sha256":
		return "sha256", value
	case HashedURLType:
		return "url", "sha256:" + value
	}
	return t, value
}

// PytxType returns the pytx name of a hashfed signal type and the value as pytx writes it: md5
// and sha256 become video_md5 and video_sha256, and an already hashed url (value sha256:<hex>)
// becomes [HashedURLType] with the bare hex. Other names come back as they are.
func PytxType(t, value string) (string, string) {
	if t == "url" {
		if h, ok := strings.CutPrefix(value, "sha256:"); ok && h != "" {
			return HashedURLType, h
		}
		return t, value
	}
	if p, ok := pytxNames[t]; ok {
		return p, value
	}
	return t, value
}

// Pytx CSV is what `threatexchange dataset --print-signals --csv` writes: one row per signal and
// collaboration, under the header signal_type,signal_str,collab,category,tags, where category
// is a SignalOpinionCategory name and tags are separated by spaces.
var pytxColumns = []string{"signal_type", "signal_str", "collab", "category", "tags"}

// Pytx opinion categories; a row of any other category is not a listing.
const (
	pytxPositive = "POSITIVE_CLASS"
	pytxSeed     = "INVESTIGATION_SEED"
)

// tagNamespace is the label namespace a pytx tag without one is read into: pytx tags are free
// words ("terrorism"), hashfed labels are namespace:value.
const tagNamespace = "tag:"

// protectedTag starts the pytx tag of a protection ([Record.Protected]): protected:parody:ngo.
// No label has this namespace.
const protectedTag = "protected:"

// isPytxHeader reports whether a CSV header is pytx's.
func isPytxHeader(col map[string]int) bool {
	_, t := col["signal_type"]
	_, s := col["signal_str"]
	return t && s
}

// pytxRow reads one row of pytx CSV.
func pytxRow(row []string, col map[string]int) (Record, error) {
	get := func(k string) string {
		if i, ok := col[k]; ok && i < len(row) {
			return strings.TrimSpace(row[i])
		}
		return ""
	}
	rec := Record{Type: get("signal_type"), Value: get("signal_str")}
	if err := checkName(rec.Type); err != nil {
		return Record{}, err
	}
	if rec.Value == "" {
		return Record{}, fmt.Errorf("no signal_str")
	}
	rec.Type, rec.Value = NormalType(rec.Type, rec.Value)
	switch c := get("category"); c {
	case "", pytxPositive, pytxSeed:
	default:
		return Record{}, fmt.Errorf("category %q is not a listing (hashfed imports %s and %s rows)", c, pytxPositive, pytxSeed)
	}
	for _, tag := range strings.Fields(get("tags")) {
		if p, ok := strings.CutPrefix(tag, protectedTag); ok {
			if p != "" && !slices.Contains(rec.Protected, p) {
				rec.Protected = append(rec.Protected, p)
			}
			continue
		}
		if !strings.Contains(tag, ":") {
			tag = tagNamespace + tag
		}
		if !slices.Contains(rec.Labels, tag) {
			rec.Labels = append(rec.Labels, tag)
		}
	}
	return rec, nil
}

// mergePytx folds rows of one signal into the first (pytx writes a row per collaboration): the
// union of their labels, and of their protections, in order of appearance.
func mergePytx(recs []Record) []Record {
	at := map[[2]string]int{}
	out := recs[:0]
	for _, r := range recs {
		k := [2]string{r.Type, r.Value}
		if i, ok := at[k]; ok {
			for _, l := range r.Labels {
				if !slices.Contains(out[i].Labels, l) {
					out[i].Labels = append(out[i].Labels, l)
				}
			}
			for _, p := range r.Protected {
				if !slices.Contains(out[i].Protected, p) {
					out[i].Protected = append(out[i].Protected, p)
				}
			}
			continue
		}
		at[k] = len(out)
		out = append(out, r)
	}
	return out
}

// pytxRows returns the pytx CSV rows of a record: one per member (the member is the collab), or
// one with no collab.
func pytxRows(rec Record) ([][]string, error) {
	t, v := PytxType(rec.Type, rec.Value)
	tags := make([]string, 0, len(rec.Labels))
	for _, l := range rec.Labels {
		if l == "" || strings.ContainsFunc(l, unicode.IsSpace) {
			return nil, fmt.Errorf("pytx csv cannot hold the label %q: empty, or with white space", l)
		}
		if s, ok := strings.CutPrefix(l, tagNamespace); ok && s != "" && !strings.Contains(s, ":") {
			l = s
		}
		tags = append(tags, l)
	}
	for _, p := range rec.Protected {
		if p == "" || strings.ContainsFunc(p, unicode.IsSpace) {
			return nil, fmt.Errorf("pytx csv cannot hold the protection %q: empty, or with white space", p)
		}
		tags = append(tags, protectedTag+p)
	}
	if v != strings.TrimSpace(v) {
		return nil, fmt.Errorf("csv cannot hold %q: it starts or ends with white space", v)
	}
	collabs := rec.Members
	if len(collabs) == 0 {
		collabs = []string{""}
	}
	rows := make([][]string, len(collabs))
	for i, c := range collabs {
		rows[i] = []string{t, v, c, pytxPositive, strings.Join(tags, " ")}
	}
	return rows, nil
}

// ReadValues reads pytx's local_file as a collaboration with a signal_type reads it: every line
// (but blank ones and # comments) is one value of type t. Lines come back as records of type t
// (its hashfed name, see [NormalType]), with their line numbers.
func ReadValues(r io.Reader, t string, progress func(line int)) ([]Record, error) {
	if err := checkName(t); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var recs []Record
	n := 0
	for sc.Scan() {
		n++
		if progress != nil {
			progress(n)
		}
		v := strings.TrimSpace(sc.Text())
		if v == "" || strings.HasPrefix(v, "#") {
			continue
		}
		typ, val := NormalType(t, v)
		recs = append(recs, Record{Type: typ, Value: val, Line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, &LineError{n + 1, err}
	}
	return recs, nil
}
