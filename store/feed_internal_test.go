package store

import (
	"testing"
)

// FuzzDecodeFeedRecord: a feed record that decodes re-encodes to a record that decodes the same
// (range records and cutoff records alike), and a cutoff record always takes one feed position.
func FuzzDecodeFeedRecord(f *testing.F) {
	for _, r := range []feedRecord{
		{seq: 0, start: 0, count: 3, member: "alpha"},
		{seq: 9, start: 4, count: 1, member: "bravo", effect: CutoffUnlisted},
		{seq: 1 << 40, start: 1 << 33, count: 1, member: "charlie", effect: CutoffOpinionApplied},
	} {
		k, v := r.encode()
		f.Add(k, v)
	}
	f.Fuzz(func(t *testing.T, k, v []byte) {
		r, err := decodeFeedRecord(k, v)
		if err != nil {
			return
		}
		if r.effect != 0 && r.count != 1 {
			t.Fatalf("cutoff record %+v takes %d feed positions, want 1", r, r.count)
		}
		k2, v2 := r.encode()
		r2, err := decodeFeedRecord(k2, v2)
		if err != nil || r2 != r {
			t.Fatalf("record %+v re-encodes to %+v (%v)", r, r2, err)
		}
	})
}

// TestFeedRecordEffect: a record with an unknown effect, or a count of 0 with no effect byte, is
// damage, not a record.
func TestFeedRecordEffect(t *testing.T) {
	k, v := feedRecord{seq: 1, start: 2, count: 1, member: "alpha", effect: CutoffListed}.encode()
	for _, tc := range []struct {
		name string
		v    []byte
		ok   bool
	}{
		{"cutoff record", v, true},
		{"unknown effect", append(append([]byte{}, v[:2]...), append([]byte{9}, v[3:]...)...), false},
		{"effect 0", append(append([]byte{}, v[:2]...), append([]byte{0}, v[3:]...)...), false},
		{"no effect byte", v[:2], false},
	} {
		if _, err := decodeFeedRecord(k, tc.v); (err == nil) != tc.ok {
			t.Errorf("%s: got error %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
