package consortium_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/consortium/pdq"
	"github.com/hashfed/hashfed/consortium/vpdq"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/protobuf/proto"
)

// videoFrames returns n frames one second apart, with distinct plausible PDQ hashes.
func videoFrames(n, seed int) []vpdq.Frame {
	out := make([]vpdq.Frame, n)
	for i := range out {
		out[i] = vpdq.Frame{Number: int64(30 * i), Quality: 100, Hash: pdq.Hash(fixture.PDQ(seed*100000 + i).Value), MS: int64(1000 * i)}
	}
	return out
}

// record encodes one frame record.
func record(h [32]byte, q uint8, ms uint32) []byte {
	b := append(h[:], q)
	return binary.BigEndian.AppendUint32(b, ms)
}

// rawVideoAdd encodes a vpdq add without validating it.
func rawVideoAdd(t *testing.T, value [32]byte, frames []byte, contentID string) []byte {
	t.Helper()
	sig := &pb.Signal{Type: "vpdq", Value: value[:]}
	e := &pb.Entry{TimeUnixMs: fixture.At(1000), Op: &pb.Entry_Add{Add: &pb.Add{Signal: sig, ContentId: contentID, Frames: frames}}}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestVideoParts(t *testing.T) {
	frames := videoFrames(3200, 1)
	frames = append(frames[:10:10], append([]vpdq.Frame{{Number: 1, Quality: 100, Hash: frames[3].Hash, MS: 9_999_000}}, frames[10:]...)...) // a repeat of frame 3
	frames[20].Quality = 10
	parts, err := consortium.VideoParts(frames, 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 3 {
		t.Fatalf("got %d parts, want 3 (3,199 unique frames of quality ≥ 50 in parts of 1,500)", len(parts))
	}
	total := 0
	for i, p := range parts {
		e, err := consortium.NewVideoAdd(fixture.At(1), p, []string{"behaviour:glorification-of-terrorist-acts"}, consortium.AddOptions{ContentID: "video-1"})
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		raw := fixture.Marshal(e)
		if len(raw) > consortium.MaxEntrySize {
			t.Fatalf("part %d: entry is %d bytes", i, len(raw))
		}
		fs, err := consortium.VideoFrames(p)
		if err != nil {
			t.Fatal(err)
		}
		total += len(fs)
	}
	if total != 3199 {
		t.Fatalf("got %d frames in the parts, want 3199 (3,201 less the repeat and the low-quality frame)", total)
	}
}

// TestVideoAddAttacks lists vpdq adds a member (or anyone forging a log's entries) could write to
// inflate, duplicate or mislabel a video, and the error each gets.
func TestVideoAddAttacks(t *testing.T) {
	good, err := consortium.VideoParts(videoFrames(5, 2), 0)
	if err != nil {
		t.Fatal(err)
	}
	part := good[0]
	sum := func(b []byte) [32]byte { return sha256.Sum256(b) }
	h := func(i int) [32]byte { return fixture.PDQ(900 + i).Value }
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	over := make([]byte, 0, (consortium.MaxFramesPerEntry+1)*consortium.FrameRecordSize)
	for i := range consortium.MaxFramesPerEntry + 1 {
		over = append(over, record(fixture.PDQ(5000+i).Value, 100, uint32(i))...)
	}
	dup := cat(record(h(1), 100, 0), record(h(2), 100, 1000), record(h(1), 100, 2000))
	zero := [32]byte{}
	tests := []struct {
		name    string
		raw     []byte
		want    error
		message string
	}{
		{"valid", rawVideoAdd(t, sum(part), part, "v"), nil, ""},
		{"value is not the frames' SHA-256", rawVideoAdd(t, sum(good[0][:37]), part, "v"), consortium.ErrInvalidEntry, "not the SHA-256 of the frames"},
		{"no frames", rawVideoAdd(t, sum(nil), nil, "v"), consortium.ErrInvalidEntry, "carries its frames"},
		{"no content id", rawVideoAdd(t, sum(part), part, ""), consortium.ErrInvalidEntry, "needs a content id"},
		{"oversized: more frames than an entry may carry", rawVideoAdd(t, sum(over), over, "v"), consortium.ErrInvalidEntry, ""},
		{"partial record", rawVideoAdd(t, sum(part[:40]), part[:40], "v"), consortium.ErrInvalidEntry, "whole number"},
		{"duplicated frame", rawVideoAdd(t, sum(dup), dup, "v"), consortium.ErrInvalidEntry, "appears twice"},
		{"repeated timestamp", rawVideoAdd(t, sum(cat(record(h(1), 100, 5), record(h(2), 100, 5))), cat(record(h(1), 100, 5), record(h(2), 100, 5)), "v"), consortium.ErrInvalidEntry, "timestamps must increase"},
		{"frames out of order", rawVideoAdd(t, sum(cat(record(h(1), 100, 9), record(h(2), 100, 5))), cat(record(h(1), 100, 9), record(h(2), 100, 5)), "v"), consortium.ErrInvalidEntry, "timestamps must increase"},
		{"quality 101", rawVideoAdd(t, sum(record(h(1), 101, 0)), record(h(1), 101, 0), "v"), consortium.ErrInvalidEntry, "quality 101"},
		{"quality 255", rawVideoAdd(t, sum(record(h(1), 255, 0)), record(h(1), 255, 0), "v"), consortium.ErrInvalidEntry, "quality 255"},
		{"all-zero frame hash", rawVideoAdd(t, sum(record(zero, 100, 0)), record(zero, 100, 0), "v"), consortium.ErrInvalidSignal, "0 bits set"},
	}
	// Frames on an add of another type.
	other := &pb.Entry{TimeUnixMs: fixture.At(1000), Op: &pb.Entry_Add{Add: &pb.Add{Signal: fixture.PDQ(1).Proto(), Frames: part}}}
	otherRaw, _ := proto.MarshalOptions{Deterministic: true}.Marshal(other)
	tests = append(tests, struct {
		name    string
		raw     []byte
		want    error
		message string
	}{"frames on a pdq add", otherRaw, consortium.ErrInvalidEntry, "only for vpdq"})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := consortium.ParseEntry(tc.raw)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("got %v, want %v mentioning %q", err, tc.want, tc.message)
			}
		})
	}
}

// TestVideoListing replays a video in two parts, a revoke of one part and a copy of the other by
// a second member under the same content id: each part is a signal of its own, listed by whoever
// added it, and a revoke withdraws only the part it names.
func TestVideoListing(t *testing.T) {
	w := newWorld(t, 1, fixture.Members("alpha", "bravo")...)
	parts, err := consortium.VideoParts(videoFrames(2000, 3), 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 2 {
		t.Fatalf("got %d parts, want 2", len(parts))
	}
	var sigs []consortium.Signal
	for _, p := range parts {
		e, err := consortium.NewVideoAdd(w.tick(), p, nil, consortium.AddOptions{ContentID: "video-1"})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.submit("alpha", e); err != nil {
			t.Fatal(err)
		}
		sigs = append(sigs, consortium.VideoSignal(p))
	}
	e, _ := consortium.NewVideoAdd(w.tick(), parts[0], nil, consortium.AddOptions{ContentID: "video-1"})
	if err := w.submit("bravo", e); err != nil {
		t.Fatal(err)
	}
	rv, _ := consortium.NewRevokeSignal(w.tick(), sigs[1], pb.RevokeReason_REVOKE_REASON_FALSE_POSITIVE, "")
	if err := w.submit("alpha", rv); err != nil {
		t.Fatal(err)
	}
	s := w.state()
	if got := listers(s, sigs[0]); got != "alpha,bravo" {
		t.Errorf("part 1: got listers %q, want alpha,bravo", got)
	}
	if got := listers(s, sigs[1]); got != "" {
		t.Errorf("part 2: got listers %q, want none (revoked)", got)
	}
}

// FuzzVideoFrames checks that accepted frame records decode to frames that encode back to the
// same bytes.
func FuzzVideoFrames(f *testing.F) {
	parts, _ := consortium.VideoParts(videoFrames(3, 4), 0)
	f.Add(parts[0])
	f.Add(parts[0][:37])
	f.Fuzz(func(t *testing.T, b []byte) {
		fs, err := consortium.VideoFrames(b)
		if err != nil {
			return
		}
		var again []byte
		for _, fr := range fs {
			again = append(again, record(fr.Hash, fr.Quality, fr.MS)...)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("frames re-encode to other bytes")
		}
	})
}
