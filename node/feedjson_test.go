package node

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// feedRecordSamples are records of every op with every optional field.
func feedRecordSamples() []FeedRecordJSON {
	q, idx, epoch := uint32(92), uint64(3), uint64(7)
	sig := &SignalJSON{Type: "pdq", Value: fixture.PDQ(1).Text()}
	return []FeedRecordJSON{
		{Cursor: "alpha.1", Seq: 0, Member: "alpha", Index: 0, Op: "add", Time: "2026-01-01T00:00:00.123Z", Signal: sig,
			Labels: []string{"behaviour:threat-incitement", "lang:ar"}, ContentID: "c<1>", Note: "a \"quoted\" note\nwith é and \u2028",
			Expires: "2027-01-01T00:00:00Z", Quality: &q, ListedBy: []string{"alpha", "bravo"}},
		{Cursor: "alpha.2", Seq: 1, Member: "bravo", Index: 9, Op: "add", Signal: sig, Labels: []string{}, ListedBy: []string{}},
		{Cursor: "alpha.3", Seq: 2, Member: "bravo", Index: 10, Op: "revoke", Signal: sig, Reason: "false_positive", RevokesIndex: &idx, Text: "t&t", ListedBy: []string{}},
		{Cursor: "alpha.4", Seq: 3, Member: "charlie", Index: 1, Op: "opinion", Signal: sig, Stance: "agree", ListedBy: []string{"alpha"}, Rejected: "no", Cutoff: "opinion_removed"},
		{Cursor: "alpha.5", Seq: 4, Member: "charlie", Index: 2, Op: "propose", Epoch: &epoch, Changes: "admit delta (member)", Proposal: "ab12"},
		{Cursor: "alpha.6", Seq: 5, Member: "alpha", Index: 4, Op: "unreadable", Rejected: "malformed: \x00\xff"},
		{Cursor: "alpha.7", Seq: 6, Member: "ngo", Index: 0, Op: "certify", Signals: []SignalJSON{*sig, {Type: "url", Value: "https://example.org/@parody"}},
			Category: "parody", Reason: "a <parody> account", Subject: "@parody", Expires: "2027-01-01T00:00:00Z", Certification: "cd34"},
		{Cursor: "alpha.8", Seq: 7, Member: "irua", Index: 0, Op: "refer", Signals: []SignalJSON{*sig}, LegalBasis: "TCO art. 3", OrderRef: "R-1",
			Deadline: "2026-01-01T01:00:00Z", To: []string{"alpha"}, Note: "n", Referral: "ef56"},
		{Cursor: "alpha.9", Seq: 8, Member: "alpha", Index: 5, Op: "answer", Referral: "ef56", Outcome: "declined", Reason: "not terrorist content"},
		{Cursor: "alpha.10", Seq: 9, Member: "alpha", Index: 6, Op: "add", Signal: sig, Labels: []string{}, ListedBy: []string{"alpha"},
			Protected: []ProtectionJSON{{Certification: "cd34", Author: "ngo", Time: "2026-01-01T00:00:00Z", Category: "news", Reason: "r&d"}}},
		// Protections with every field, and strings a hostile certifier could write (quotes,
		// backslashes, control characters, HTML, line separators, invalid UTF-8).
		{Cursor: "alpha.11", Seq: 10, Member: "alpha", Index: 7, Op: "add", Signal: sig, Labels: []string{}, ListedBy: []string{"alpha", "bravo"},
			Protected: []ProtectionJSON{
				{Certification: "cd34", Author: "ngo", Index: 18446744073709551615, Time: "2026-01-01T00:00:00.5Z", Category: "parody",
					Reason: "\"}],\"x\":\"\\\n\t\x00\x1f</script>&amp;", Subject: "@a\u2028b\u2029c\xff\xfe é", Expires: "2027-01-01T00:00:00Z"},
				{Certification: "ef56", Author: "ngo2", Index: 3, Time: "2026-01-02T00:00:00Z", Category: "counter_speech", Reason: ""},
			}},
		// An empty list is written, as encoding/json does (only a nil one is left out).
		{Cursor: "alpha.12", Seq: 11, Member: "alpha", Index: 8, Op: "add", Protected: []ProtectionJSON{}},
	}
}

// TestFeedRecordAppendJSON checks that the hand-written encoder writes what encoding/json does.
func TestFeedRecordAppendJSON(t *testing.T) {
	recs := feedRecordSamples()
	// And records made from wire events, as the feed makes them.
	recs = append(recs, NewFeedRecordJSON("alpha", &pb.FeedEvent{Seq: 9, Member: "bravo", Index: 2,
		Entry: fixture.Add(fixture.At(0), fixture.MD5(1), "incident:x"), ListedBy: []string{"bravo"}, Signal: fixture.MD5(1).Proto()}))
	endorse := &pb.Entry{TimeUnixMs: fixture.At(5), Op: &pb.Entry_Endorse{Endorse: &pb.Endorse{Epoch: 2, Proposal: make([]byte, 32)}}}
	recs = append(recs, NewFeedRecordJSON("alpha", &pb.FeedEvent{Seq: 10, Member: "bravo", Index: 3, Entry: endorse, Cutoff: pb.CutoffEffect_CUTOFF_EFFECT_LISTED}))
	recs = append(recs, NewFeedRecordJSON("alpha", &pb.FeedEvent{Seq: 11, Member: "bravo", Index: 4,
		Entry: fixture.Add(fixture.At(0), fixture.PDQ(2)), ListedBy: []string{"bravo"}, Signal: fixture.PDQ(2).Proto(),
		Protected: []*pb.Protection{{Certification: make([]byte, 32), Author: "ngo", Index: 2, TimeUnixMs: fixture.At(1), Category: pb.Category_CATEGORY_NEWS,
			Reason: "a \"report\" <b>\u2028", Subject: "\x7f\x01", ExpiresUnixMs: fixture.At(99)}}}))
	if got := recs[len(recs)-1].Protected; len(got) != 1 || got[0].Expires == "" || got[0].Subject == "" {
		t.Fatalf("record from a wire event: got protections %+v, want one with every field", got)
	}
	for i, r := range recs {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.AppendJSON(nil); string(got) != string(want) {
			t.Errorf("record %d:\ngot  %s\nwant %s", i, got, want)
		}
	}
}

// FuzzFeedRecordAppendJSON checks the hand-written encoder against encoding/json on any strings.
func FuzzFeedRecordAppendJSON(f *testing.F) {
	for _, r := range feedRecordSamples() {
		f.Add(r.Member, r.Note, r.Rejected, r.Seq)
	}
	f.Fuzz(func(t *testing.T, member, note, rejected string, seq uint64) {
		r := FeedRecordJSON{Cursor: FormatCursor(member, seq+1), Seq: seq, Member: member, Op: "add", Note: note, Rejected: rejected,
			Labels: []string{note}, ListedBy: []string{member, rejected}, Signal: &SignalJSON{Type: consortium.MD5.String(), Value: note},
			Protected: []ProtectionJSON{{Certification: rejected, Author: member, Index: seq, Time: note, Category: member, Reason: note, Subject: rejected, Expires: note}}}
		if seq%2 == 1 {
			r.Protected = append(r.Protected, ProtectionJSON{Author: rejected, Reason: member})
		}
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.AppendJSON(nil); string(got) != string(want) {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	})
}

// FuzzParseCursor checks that a cursor that parses names a position that formats back to a cursor
// parsing to the same position, and that a cursor of another node is never accepted.
func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"", "alpha.0", "alpha.18446744073709551615", "12", "beta.3", "alpha.", ".5", "alpha.-1", "alpha.1.2", "alpha.+1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pos, err := ParseCursor(s, "alpha")
		if err != nil {
			return
		}
		if who, _, ok := strings.Cut(s, "."); ok && who != "alpha" {
			t.Fatalf("%q: accepted a cursor of node %q", s, who)
		}
		again, err := ParseCursor(FormatCursor("alpha", pos), "alpha")
		if err != nil || again != pos {
			t.Fatalf("%q: position %d formats to a cursor that parses to %d, %v", s, pos, again, err)
		}
	})
}
