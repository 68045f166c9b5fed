// Package hashlist reads and writes the hash-list files members exchange outside the logs: the
// python-threatexchange local_file format ("te": one "TYPE VALUE" per line), CSV with a header
// (hashfed's columns, or pytx's `threatexchange dataset --csv` columns), and JSON Lines. Every format carries the same [Record]; a format that cannot hold a field (te
// holds only the type and the value) leaves it out.
//
// The package only parses and prints: it does not check that a type is a known signal type, that
// a value is a valid hash or that a label is canonical (that is [consortium.ParseSignal] and
// [consortium.CanonicalLabels]), and it touches no disk or network.
package hashlist

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// Record is one line of a hash list.
type Record struct {
	// Type is the signal type: hashfed's name (pdq, md5, sha256, url, ...), lowercased; readers
	// turn pytx's names into hashfed's (see [NormalType]).
	Type string `json:"type"`
	// Value is the hash or URL as written.
	Value string `json:"value"`
	// Labels are the labels of the listing, as written.
	Labels []string `json:"labels,omitempty"`
	// ContentID groups several signals of one piece of content.
	ContentID string `json:"content_id,omitempty"`
	// Note is free text for reviewers.
	Note string `json:"note,omitempty"`
	// Expires is when the listing lapses, as written: 90d, 12h or an RFC 3339 time.
	Expires string `json:"expires,omitempty"`
	// Quality is the PDQ quality (0-100) the hasher reported, if any.
	Quality *int `json:"quality,omitempty"`
	// Members are the members that list the signal (an export fills it; an import ignores it).
	Members []string `json:"members,omitempty"`
	// Listings is each member's listing of the signal, as a node's JSON answers give them (JSON
	// Lines only). It is read so that such a line imports, and otherwise ignored: like Members,
	// it says who else lists the signal, and an import lists it only under the importing member.
	Listings json.RawMessage `json:"listings,omitempty"`
	// Protected names the certifications in force that protect the signal, each as
	// "<category>:<author>" (parody:ngo): a match of it belongs in human review, not automated
	// removal. An export fills it (te has no room for it); an import ignores it, since only a
	// certification's author can certify.
	Protected []string `json:"protected,omitempty"`

	// Line is the line of the input the record starts on (from 1); writers ignore it.
	Line int `json:"-"`
}

// Format is a hash-list file format.
type Format string

// The formats.
const (
	// TE is python-threatexchange's local_file format: "TYPE VALUE" per line, # comments. The
	// writer uses pytx's type names (video_md5, video_sha256, pdq, url) and [HashedURLType].
	TE Format = "te"
	// CSV has a header naming its columns (type and value required; any of labels, content_id,
	// note, expires, quality and members); labels are separated by ";" and # starts a comment.
	CSV Format = "csv"
	// JSONL is one JSON object per line with the fields of [Record].
	JSONL Format = "jsonl"
	// PytxCSV is python-threatexchange's CSV (`threatexchange dataset -P --csv`): header
	// signal_type,signal_str,collab,category,tags, with pytx's type names, one row per member (the
	// collab), category POSITIVE_CLASS and the labels as space-separated tags. Reading it is
	// reading [CSV]: the reader knows the header.
	PytxCSV Format = "pytx-csv"
)

// ErrUnknownFormat means a format name is not te, csv, pytx-csv or jsonl.
var ErrUnknownFormat = errors.New("unknown hash-list format")

// ParseFormat returns the format named s.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case TE, CSV, JSONL, PytxCSV:
		return f, nil
	}
	return "", fmt.Errorf("%w %q: want te, csv, pytx-csv or jsonl", ErrUnknownFormat, s)
}

// FormatOf guesses a file's format from its name: .csv is CSV, .jsonl, .ndjson and .json are
// JSON Lines, anything else te.
func FormatOf(name string) Format {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".csv":
		return CSV
	case ".jsonl", ".ndjson", ".json":
		return JSONL
	}
	return TE
}

// columns are the CSV columns in the order [Writer] writes them.
var columns = []string{"type", "value", "labels", "content_id", "note", "expires", "quality", "members", "protected"}

// LineError is a line of the input that is not a record: the line number (from 1) and why.
type LineError struct {
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

func (e *LineError) Unwrap() error { return e.Err }

// checkName reports whether s can be a signal type: a non-empty name of lowercase or uppercase
// letters, digits, _ and -. (Whether it is a known type is for the caller to decide.)
func checkName(s string) error {
	if s == "" {
		return errors.New("no type")
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-') {
			return fmt.Errorf("type %q is not a signal type name (letters, digits, _ and -)", s)
		}
	}
	return nil
}
