package hashlist

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Change is one change a programme's list makes: a record to add (or replace), or a deletion of
// one signal (Record's type and value) or of everything a content id carries (ContentID alone).
type Change struct {
	Delete    bool
	Record    Record
	ContentID string
}

// The programmes' formats, read by [ReadChanges] only: they come from other programmes' APIs and
// are imported into local banks, never written.
const (
	// NCMEC is the XML of NCMEC's hash-sharing API (GET /v2/entries), as python-threatexchange
	// parses it: images and videos, each entry with a member, an id, a classification and its
	// fingerprints; deletedImage and deletedVideo entries withdraw an id.
	NCMEC Format = "ncmec"
	// StopNCII is the JSON of StopNCII's FetchHashes: hashRecords with signalType, hashValue and
	// hashStatus (Withdrawn and Deleted withdraw the hash).
	StopNCII Format = "stopncii"
)

// ErrFormat means a programme's file is not of its format.
var ErrFormat = errors.New("not a file of this format")

// ReadChanges reads a list in any format as changes: te, csv, pytx-csv and jsonl give one add per
// record (with the lines that are not records in bad), ncmec and stopncii their adds and
// deletions, in the file's order. Fingerprints hashfed has no type for (NCMEC's sha1 and pdna,
// StopNCII's VideoTMK and Text) are left out and counted in skipped.
func ReadChanges(r io.Reader, f Format) (changes []Change, bad []*LineError, skipped int, err error) {
	switch f {
	case NCMEC:
		changes, skipped, err = readNCMEC(r)
		return changes, nil, skipped, err
	case StopNCII:
		changes, skipped, err = readStopNCII(r)
		return changes, nil, skipped, err
	}
	recs, bad, err := Read(r, f, nil)
	if err != nil {
		return nil, nil, 0, err
	}
	for _, rec := range recs {
		changes = append(changes, Change{Record: rec})
	}
	return changes, bad, 0, nil
}

// maxProgrammeFile bounds the programmes' files ReadChanges decodes.
const maxProgrammeFile = 1 << 30

type ncmecResult struct {
	Images ncmecEntries `xml:"images"`
	Videos ncmecEntries `xml:"videos"`
}

type ncmecEntries struct {
	Entries []ncmecEntry `xml:",any"`
}

type ncmecEntry struct {
	XMLName xml.Name
	Member  struct {
		ID string `xml:"id,attr"`
	} `xml:"member"`
	ID             string `xml:"id"`
	Classification string `xml:"classification"`
	Fingerprints   struct {
		Items []struct {
			XMLName xml.Name
			Value   string `xml:",chardata"`
		} `xml:",any"`
	} `xml:"fingerprints"`
}

// ncmecTypes maps NCMEC's fingerprint names to hashfed's types.
var ncmecTypes = map[string]string{"md5": "md5", "pdq": "pdq"}

func readNCMEC(r io.Reader) ([]Change, int, error) {
	var res ncmecResult
	dec := xml.NewDecoder(io.LimitReader(r, maxProgrammeFile))
	if err := dec.Decode(&res); err != nil {
		return nil, 0, fmt.Errorf("%w ncmec (the XML of GET /v2/entries): %v", ErrFormat, err)
	}
	var out []Change
	skipped := 0
	for _, list := range []struct {
		kind    string
		entries []ncmecEntry
	}{{"image", res.Images.Entries}, {"video", res.Videos.Entries}} {
		for _, e := range list.entries {
			tag := strings.ToLower(e.XMLName.Local)
			deleted := strings.HasPrefix(tag, "deleted")
			if strings.TrimPrefix(tag, "deleted") != list.kind {
				return nil, 0, fmt.Errorf("%w ncmec: <%s> inside <%ss>", ErrFormat, e.XMLName.Local, list.kind)
			}
			if e.ID == "" || e.Member.ID == "" {
				return nil, 0, fmt.Errorf("%w ncmec: a <%s> without a member id or an id", ErrFormat, e.XMLName.Local)
			}
			// pytx keys NCMEC's entries "<member id>-<entry id>".
			content := "ncmec:" + strings.TrimSpace(e.Member.ID) + "-" + strings.TrimSpace(e.ID)
			// An entry sent again replaces what it held: withdraw the id first.
			out = append(out, Change{Delete: true, ContentID: content})
			if deleted {
				continue
			}
			var labels []string
			if c := strings.TrimSpace(e.Classification); c != "" {
				labels = []string{"ncmec-classification:" + c}
			}
			for _, fp := range e.Fingerprints.Items {
				v := strings.TrimSpace(fp.Value)
				t, ok := ncmecTypes[strings.ToLower(fp.XMLName.Local)]
				if !ok || v == "" {
					skipped++
					continue
				}
				out = append(out, Change{Record: Record{Type: t, Value: v, Labels: labels, ContentID: content}})
			}
		}
	}
	return out, skipped, nil
}

type stopNCIIResponse struct {
	HashRecords []struct {
		SignalType string `json:"signalType"`
		HashValue  string `json:"hashValue"`
		HashStatus string `json:"hashStatus"`
	} `json:"hashRecords"`
}

// stopNCIITypes maps StopNCII's signal types to hashfed's.
var stopNCIITypes = map[string]string{"ImagePDQ": "pdq", "VideoMD5": "md5", "URL": "url"}

func readStopNCII(r io.Reader) ([]Change, int, error) {
	var res stopNCIIResponse
	dec := json.NewDecoder(io.LimitReader(r, maxProgrammeFile))
	if err := dec.Decode(&res); err != nil {
		return nil, 0, fmt.Errorf("%w stopncii (the JSON of FetchHashes): %v", ErrFormat, err)
	}
	if res.HashRecords == nil {
		return nil, 0, fmt.Errorf("%w stopncii: no hashRecords", ErrFormat)
	}
	var out []Change
	skipped := 0
	for _, h := range res.HashRecords {
		t, ok := stopNCIITypes[h.SignalType]
		if !ok || h.HashValue == "" {
			skipped++
			continue
		}
		rec := Record{Type: t, Value: h.HashValue}
		switch h.HashStatus {
		case "Withdrawn", "Deleted":
			out = append(out, Change{Delete: true, Record: rec})
		default:
			out = append(out, Change{Record: rec})
		}
	}
	return out, skipped, nil
}
