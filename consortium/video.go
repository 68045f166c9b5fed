package consortium

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/hashfed/hashfed/consortium/pdq"
	"github.com/hashfed/hashfed/consortium/vpdq"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// Video frames in entries (docs/PROTOCOL.md, "vpdq"). A video's vPDQ hash is shared as one or
// more adds of type vpdq, each carrying up to [MaxFramesPerEntry] frame records in Add.frames;
// the adds of one video share a content id. The signal's value is the SHA-256 of the frame
// records, so the state (and its digest) names each part by its content, like any other signal.
const (
	// FrameRecordSize is the size of one frame record: PDQ (32), quality (1), milliseconds (4).
	FrameRecordSize = 37
	// MaxFramesPerEntry bounds the frames of one add: 1,500 records are 55,500 bytes, which leaves
	// room in [MaxEntrySize] for the signal, labels, content id and note.
	MaxFramesPerEntry = 1500
)

// VideoFrame is one frame of a vpdq add: what matching needs (no frame number).
type VideoFrame struct {
	Hash    pdq.Hash
	Quality uint8
	MS      uint32
}

// decodeFrames validates frame records: a whole number of records, 1 to [MaxFramesPerEntry],
// timestamps strictly increasing, qualities 0 to 100, each PDQ hash a plausible one and none
// repeated. visit, when not nil, is called with each frame.
func decodeFrames(b []byte, visit func(VideoFrame)) error {
	if len(b)%FrameRecordSize != 0 {
		return fmt.Errorf("%w: add: frames are %d bytes, not a whole number of %d-byte records", ErrInvalidEntry, len(b), FrameRecordSize)
	}
	n := len(b) / FrameRecordSize
	if n == 0 || n > MaxFramesPerEntry {
		return fmt.Errorf("%w: add: %d frames, want 1 to %d (split a longer video into several adds with one content id)", ErrInvalidEntry, n, MaxFramesPerEntry)
	}
	seen := make([]pdq.Hash, 0, n)
	var last uint32
	for i := range n {
		r := b[i*FrameRecordSize : (i+1)*FrameRecordSize]
		var f VideoFrame
		copy(f.Hash[:], r[:32])
		f.Quality = r[32]
		f.MS = binary.BigEndian.Uint32(r[33:])
		if f.Quality > vpdq.MaxQuality {
			return fmt.Errorf("%w: add: frame %d has quality %d, want 0 to 100", ErrInvalidEntry, i, f.Quality)
		}
		if i > 0 && f.MS <= last {
			return fmt.Errorf("%w: add: frame %d at %d ms is not after frame %d at %d ms (timestamps must increase)", ErrInvalidEntry, i, f.MS, i-1, last)
		}
		last = f.MS
		if isDegeneratePDQ(f.Hash) {
			return fmt.Errorf("%w: add: frame %d: %w: pdq hash has %d bits set", ErrInvalidEntry, i, ErrInvalidSignal, pdqOnes(f.Hash))
		}
		seen = append(seen, f.Hash)
		if visit != nil {
			visit(f)
		}
	}
	slices.SortFunc(seen, func(a, b pdq.Hash) int { return bytes.Compare(a[:], b[:]) })
	for i := 1; i < len(seen); i++ {
		if seen[i] == seen[i-1] {
			return fmt.Errorf("%w: add: frame hash %s appears twice (an add carries unique frames only)", ErrInvalidEntry, seen[i])
		}
	}
	return nil
}

// VideoFrames returns the frames of a vpdq add's frame records, validated.
func VideoFrames(b []byte) ([]VideoFrame, error) {
	var out []VideoFrame
	err := decodeFrames(b, func(f VideoFrame) { out = append(out, f) })
	return out, err
}

// VideoSignal returns the vpdq signal of a part's frame records: the SHA-256 of the bytes.
func VideoSignal(records []byte) Signal {
	return Signal{Type: VPDQ, Value: sha256.Sum256(records)}
}

// VideoParts turns a video's frame hashes into the frame records of its vpdq adds: frames of
// quality below minQuality are left out, so is every frame whose PDQ hash repeats an earlier one
// exactly, and the rest are cut into parts of at most [MaxFramesPerEntry] frames in time order.
// A timestamp beyond 2^32-1 ms (49 days) is an error.
func VideoParts(frames []vpdq.Frame, minQuality int) ([][]byte, error) {
	kept := vpdq.Prepare(frames, minQuality)
	var parts [][]byte
	var cur []byte
	last := int64(-1)
	for _, f := range kept {
		if f.MS < 0 || f.MS > math.MaxUint32 {
			return nil, fmt.Errorf("%w: frame %d at %d ms: want 0 to %d ms", ErrInvalidSignal, f.Number, f.MS, uint32(math.MaxUint32))
		}
		if f.MS <= last {
			// Frames closer than a millisecond (over 1000 frames a second): keep the first.
			continue
		}
		if isDegeneratePDQ(f.Hash) {
			continue
		}
		last = f.MS
		if len(cur) == MaxFramesPerEntry*FrameRecordSize {
			parts = append(parts, cur)
			cur = nil
		}
		cur = append(cur, f.Hash[:]...)
		cur = append(cur, byte(f.Quality))
		cur = binary.BigEndian.AppendUint32(cur, uint32(f.MS))
	}
	if len(cur) > 0 {
		parts = append(parts, cur)
	}
	return parts, nil
}

// checkVideoAdd checks the rules that tie an add's frames to its signal: frames on vpdq adds
// only, always with a content id, valid records, and the signal's value their SHA-256.
func checkVideoAdd(sig Signal, frames []byte, hasContentID bool) error {
	if sig.Type != VPDQ {
		if frames != nil {
			return fmt.Errorf("%w: add: frames are only for vpdq signals, not %s", ErrInvalidEntry, sig.Type)
		}
		return nil
	}
	if frames == nil {
		return fmt.Errorf("%w: add: a vpdq add carries its frames", ErrInvalidEntry)
	}
	if !hasContentID {
		return fmt.Errorf("%w: add: a vpdq add needs a content id (it names the video the part belongs to)", ErrInvalidEntry)
	}
	if err := decodeFrames(frames, nil); err != nil {
		return err
	}
	if sum := sha256.Sum256(frames); sum != sig.Value {
		val, got := sig.Value, sum // copies, so that neither escapes but on this path (every add passes here)
		return fmt.Errorf("%w: add: vpdq value %x is not the SHA-256 of the frames (%x)", ErrInvalidEntry, val[:8], got[:8])
	}
	return nil
}

// NewVideoAdd returns the add of one part of a video: records are the part's frame records (from
// [VideoParts]), contentID names the video (the same for all its parts, and required).
func NewVideoAdd(t int64, records []byte, labels []string, o AddOptions) (*pb.Entry, error) {
	ls, err := CanonicalLabels(labels)
	if err != nil {
		return nil, err
	}
	sig := VideoSignal(records)
	a := &pb.Add{Signal: sig.Proto(), Labels: ls, ContentId: o.ContentID, Note: o.Note, ExpiresUnixMs: o.ExpiresUnixMs, Frames: records}
	return checked(&pb.Entry{TimeUnixMs: t, Op: &pb.Entry_Add{Add: a}})
}
