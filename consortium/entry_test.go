package consortium_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func TestEntryValidation(t *testing.T) {
	now := fixture.At(1000)
	sig := fixture.PDQ(1)
	q := func(v uint32) *uint32 { return &v }
	add := func(mod func(a *pb.Add)) *pb.Entry {
		e := fixture.Add(now, sig, "behaviour:threat-incitement")
		mod(e.GetAdd())
		return e
	}
	tests := []struct {
		name string
		e    *pb.Entry
		want error
		msg  string
	}{
		{"valid add", fixture.Add(now, sig), nil, ""},
		{"valid add with everything", add(func(a *pb.Add) {
			a.ContentId = "img-1"
			a.Note = "from the 2019 attack video"
			a.ExpiresUnixMs = now + 1
			a.Quality = q(100)
		}), nil, ""},
		{"no time", fixture.Add(0, sig), consortium.ErrInvalidEntry, "time missing"},
		{"no op", &pb.Entry{TimeUnixMs: now}, consortium.ErrInvalidEntry, "no operation"},
		{"short pdq", add(func(a *pb.Add) { a.Signal.Value = a.Signal.Value[:31] }), consortium.ErrInvalidSignal, "31 bytes, want 32"},
		{"unknown signal type", add(func(a *pb.Add) { a.Signal.Type = "tmk" }), consortium.ErrUnknownSignalType, "tmk"},
		{"missing signal", add(func(a *pb.Add) { a.Signal = nil }), consortium.ErrInvalidSignal, "missing"},
		{"non-canonical label", add(func(a *pb.Add) { a.Labels = []string{"threat-incitement"} }), consortium.ErrInvalidLabel, "canonical form"},
		{"unsorted labels", add(func(a *pb.Add) { a.Labels = []string{"lang:en", "lang:ar"} }), consortium.ErrInvalidLabel, "sorted"},
		{"unknown behaviour", add(func(a *pb.Add) { a.Labels = []string{"behaviour:memes"} }), consortium.ErrInvalidLabel, "unknown behaviour"},
		{"expired add", add(func(a *pb.Add) { a.ExpiresUnixMs = now }), consortium.ErrExpired, "not after its own time"},
		{"negative expiry", add(func(a *pb.Add) { a.ExpiresUnixMs = -5 }), consortium.ErrInvalidEntry, "negative expiry"},
		{"quality over 100", add(func(a *pb.Add) { a.Quality = q(101) }), consortium.ErrInvalidEntry, "quality 101"},
		{"quality on md5", &pb.Entry{TimeUnixMs: now, Op: &pb.Entry_Add{Add: &pb.Add{Signal: fixture.MD5(1).Proto(), Quality: q(80)}}}, consortium.ErrInvalidEntry, "only for pdq"},
		{"huge note", add(func(a *pb.Add) { a.Note = strings.Repeat("x", consortium.MaxTextSize+1) }), consortium.ErrInvalidEntry, "note is 4097 bytes"},
		{"control char in content id", add(func(a *pb.Add) { a.ContentId = "a\nb" }), consortium.ErrInvalidEntry, "control characters"},
		{"revoke without target", &pb.Entry{TimeUnixMs: now, Op: &pb.Entry_Revoke{Revoke: &pb.Revoke{Reason: pb.RevokeReason_REVOKE_REASON_OTHER}}}, consortium.ErrInvalidEntry, "no target"},
		{"revoke without reason", &pb.Entry{TimeUnixMs: now, Op: &pb.Entry_Revoke{Revoke: &pb.Revoke{Target: &pb.Revoke_Index{Index: 0}}}}, consortium.ErrInvalidEntry, "revoke reason 0"},
		{"revoke by index 0", fixture.RevokeIndex(now, 0), nil, ""},
		{"opinion without stance", &pb.Entry{TimeUnixMs: now, Op: &pb.Entry_Opinion{Opinion: &pb.Opinion{Signal: sig.Proto()}}}, consortium.ErrInvalidEntry, "stance 0"},
		{"opinion with unknown stance", &pb.Entry{TimeUnixMs: now, Op: &pb.Entry_Opinion{Opinion: &pb.Opinion{Signal: sig.Proto(), Stance: 99}}}, consortium.ErrInvalidEntry, "stance 99"},
		{"empty proposal", fixture.Propose(now, "alpha", 0), consortium.ErrInvalidEntry, "0 changes"},
		{"admit with short key", fixture.Propose(now, "alpha", 0, &pb.RosterChange{Change: &pb.RosterChange_Admit{Admit: &pb.Member{Id: "delta", PublicKey: []byte{1}, Role: pb.Role_ROLE_MEMBER}}}), consortium.ErrInvalidKey, "1 bytes"},
		{"remove bad id", fixture.Propose(now, "alpha", 0, &pb.RosterChange{Change: &pb.RosterChange_Remove{Remove: "BAD"}}), consortium.ErrInvalidMemberID, "BAD"},
		{"quorum zero", fixture.Propose(now, "alpha", 0, &pb.RosterChange{Change: &pb.RosterChange_SetQuorum{SetQuorum: 0}}), consortium.ErrMalformed, "quorum 0"},
		{"proposal without author", fixture.Remove(now, "", 0, "bravo"), consortium.ErrInvalidEntry, "names no author"},
		{"proposal with a bad author id", fixture.Remove(now, "Alpha", 0, "bravo"), consortium.ErrInvalidMemberID, "Alpha"},
		{"proposal with an author", fixture.Remove(now, "alpha", 0, "bravo"), nil, ""},
		{"endorse short hash", &pb.Entry{TimeUnixMs: now, Op: &pb.Entry_Endorse{Endorse: &pb.Endorse{Proposal: []byte{1, 2}}}}, consortium.ErrInvalidEntry, "2 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := consortium.MarshalEntry(tc.e)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("MarshalEntry: got %v, want nil", err)
				}
				back, err := consortium.ParseEntry(raw)
				if err != nil || !proto.Equal(back, tc.e) {
					t.Fatalf("ParseEntry round trip: got %v, %v", back, err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("MarshalEntry: got %v, want %v mentioning %q", err, tc.want, tc.msg)
			}
			// The same bytes arriving from a peer are refused the same way.
			raw, _ = proto.Marshal(tc.e)
			if _, err := consortium.ParseEntry(raw); !errors.Is(err, tc.want) {
				t.Errorf("ParseEntry: got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseEntryRefusesUnknownFieldsAndJunk(t *testing.T) {
	raw := fixture.Marshal(fixture.Add(fixture.At(1), fixture.PDQ(1)))
	withUnknown := protowire.AppendTag(append([]byte(nil), raw...), 99, protowire.VarintType)
	withUnknown = protowire.AppendVarint(withUnknown, 1)
	if _, err := consortium.ParseEntry(withUnknown); !errors.Is(err, consortium.ErrMalformed) || !strings.Contains(err.Error(), "not one this version knows") {
		t.Errorf("unknown field: got %v", err)
	}
	if _, err := consortium.ParseEntry([]byte{0xff, 0xff}); !errors.Is(err, consortium.ErrMalformed) {
		t.Errorf("junk: got %v", err)
	}
	if _, err := consortium.ParseEntry(make([]byte, consortium.MaxEntrySize+1)); !errors.Is(err, consortium.ErrInvalidEntry) {
		t.Errorf("oversized: got %v", err)
	}
}

func TestReasonsAndStances(t *testing.T) {
	for _, r := range consortium.RevokeReasons() {
		v, err := consortium.ParseRevokeReason(r)
		if err != nil || consortium.ReasonName(v) != r {
			t.Errorf("reason %q: got %v, %v", r, v, err)
		}
	}
	for _, s := range consortium.Stances() {
		v, err := consortium.ParseStance(s)
		if err != nil || consortium.StanceName(v) != s {
			t.Errorf("stance %q: got %v, %v", s, v, err)
		}
	}
	if _, err := consortium.ParseRevokeReason("unspecified"); err == nil {
		t.Error("unspecified reason accepted")
	}
	if _, err := consortium.ParseStance("love"); err == nil {
		t.Error("unknown stance accepted")
	}
}

// TestCanonicalEncodingRequired checks that the same entry in another valid protobuf encoding is
// refused: every entry has exactly one byte form.
func TestCanonicalEncodingRequired(t *testing.T) {
	raw := fixture.Marshal(fixture.Add(fixture.At(1), fixture.PDQ(1), "lang:ar"))
	// Fields out of order: the add (field 2) before the time (field 1).
	var swapped []byte
	tn, tt, n := protowire.ConsumeField(raw)
	_ = tn
	_ = tt
	swapped = append(append(swapped, raw[n:]...), raw[:n]...)
	// A non-minimal varint for the time.
	e := fixture.Add(fixture.At(1), fixture.PDQ(1))
	padded := protowire.AppendTag(nil, 1, protowire.VarintType)
	v := uint64(e.TimeUnixMs)
	for v >= 0x80 {
		padded = append(padded, byte(v)|0x80)
		v >>= 7
	}
	padded = append(padded, byte(v)|0x80, 0x00)
	body := fixture.Marshal(e)
	_, _, n = protowire.ConsumeField(body)
	padded = append(padded, body[n:]...)
	// A default value written out: content_id "".
	empty := fixture.Marshal(fixture.Add(fixture.At(1), fixture.PDQ(1)))
	for _, tc := range []struct {
		name string
		raw  []byte
		msg  string
	}{
		{"fields out of order", swapped, "after field"},
		{"non-minimal varint", padded, "non-minimal"},
		{"duplicate time field", append(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 5), empty...), "after field 1"},
	} {
		if _, err := consortium.ParseEntry(tc.raw); !errors.Is(err, consortium.ErrMalformed) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: got %v, want ErrMalformed mentioning %q", tc.name, err, tc.msg)
		}
		// proto.Unmarshal itself accepts these bytes: the check is ours.
		if err := proto.Unmarshal(tc.raw, new(pb.Entry)); err != nil {
			t.Errorf("%s: test bytes are not valid protobuf: %v", tc.name, err)
		}
	}
}
