package consortium

import (
	"slices"
	"unicode/utf8"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/protobuf/encoding/protowire"
)

// appendAdd appends the encoding of e, an add, exactly as proto.MarshalOptions{Deterministic:
// true} writes it (fields in number order, zero scalars left out, a set quality written even when
// zero), and reports true; it reports false, appending nothing, for anything else: another
// operation, a nil add, unknown fields, or a string that is not UTF-8 (which the protobuf library
// refuses). Adds are nearly all of what a node writes, and this is several times faster than the
// library's reflection; MarshalEntry uses the library for everything else, and a fuzz test
// (FuzzAppendAdd) holds the two to the same bytes.
func appendAdd(b []byte, e *pb.Entry) ([]byte, bool) {
	op, ok := e.Op.(*pb.Entry_Add)
	if !ok || op.Add == nil || len(e.ProtoReflect().GetUnknown()) > 0 {
		return b, false
	}
	a := op.Add
	if len(a.ProtoReflect().GetUnknown()) > 0 || !utf8.ValidString(a.ContentId) || !utf8.ValidString(a.Note) {
		return b, false
	}
	for _, l := range a.Labels {
		if !utf8.ValidString(l) {
			return b, false
		}
	}
	sigSize := 0
	if s := a.Signal; s != nil {
		if len(s.ProtoReflect().GetUnknown()) > 0 || !utf8.ValidString(s.Type) {
			return b, false
		}
		sigSize = stringField(len(s.Type)) + stringField(len(s.Value))
	}
	addSize := stringField(len(a.ContentId)) + stringField(len(a.Note)) + stringField(len(a.Frames))
	if a.Signal != nil {
		addSize += 1 + protowire.SizeBytes(sigSize)
	}
	for _, l := range a.Labels {
		addSize += 1 + protowire.SizeBytes(len(l))
	}
	if a.ExpiresUnixMs != 0 {
		addSize += 1 + protowire.SizeVarint(uint64(a.ExpiresUnixMs))
	}
	if a.Quality != nil {
		addSize += 1 + protowire.SizeVarint(uint64(*a.Quality))
	}
	size := 1 + protowire.SizeBytes(addSize)
	if e.TimeUnixMs != 0 {
		size += 1 + protowire.SizeVarint(uint64(e.TimeUnixMs))
	}
	b = slices.Grow(b, size)

	if e.TimeUnixMs != 0 {
		b = protowire.AppendVarint(append(b, 1<<3|byte(protowire.VarintType)), uint64(e.TimeUnixMs))
	}
	b = protowire.AppendVarint(append(b, 2<<3|byte(protowire.BytesType)), uint64(addSize))
	if s := a.Signal; s != nil {
		b = protowire.AppendVarint(append(b, 1<<3|byte(protowire.BytesType)), uint64(sigSize))
		b = appendStringField(b, 1, s.Type)
		b = appendBytesField(b, 2, s.Value)
	}
	for _, l := range a.Labels {
		b = protowire.AppendString(append(b, 2<<3|byte(protowire.BytesType)), l)
	}
	b = appendStringField(b, 3, a.ContentId)
	if a.ExpiresUnixMs != 0 {
		b = protowire.AppendVarint(append(b, 4<<3|byte(protowire.VarintType)), uint64(a.ExpiresUnixMs))
	}
	b = appendStringField(b, 5, a.Note)
	if a.Quality != nil {
		b = protowire.AppendVarint(append(b, 6<<3|byte(protowire.VarintType)), uint64(*a.Quality))
	}
	b = appendBytesField(b, 7, a.Frames)
	return b, true
}

// stringField is the size of a string or bytes field of n bytes and a number below 16, left out
// when empty.
func stringField(n int) int {
	if n == 0 {
		return 0
	}
	return 1 + protowire.SizeBytes(n)
}

// appendStringField appends a string or bytes field of a number below 16, left out when empty.
func appendStringField(b []byte, num byte, s string) []byte {
	if s == "" {
		return b
	}
	return protowire.AppendString(append(b, num<<3|byte(protowire.BytesType)), s)
}

// appendBytesField appends a bytes field of a number below 16, left out when empty.
func appendBytesField(b []byte, num byte, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	return protowire.AppendBytes(append(b, num<<3|byte(protowire.BytesType)), v)
}

// addView sets v to what [Decode] of raw gives, for an add e that appendAdd encoded as raw, when
// it can tell from e alone that raw is a valid entry, and reports true; it reports false when it
// cannot (v is then undefined, and the caller decodes raw, which also finds the error to report).
// It may decline a valid add (a vpdq add, whose frames it leaves to the decoder), never accept an
// invalid one: each check is the decoder's own, applied to the field appendAdd wrote, and a field
// appendAdd leaves out (an empty string, a zero expiry) is one the decoder finds absent.
// TestAddViewMatchesDecode and FuzzAddView hold it to [Decode].
func addView(e *pb.Entry, raw []byte, v *entryView) bool {
	a := e.GetAdd()
	if len(raw) > MaxEntrySize || e.TimeUnixMs <= 0 || a == nil || a.Signal == nil || len(a.Frames) > 0 {
		return false
	}
	t, err := ParseSignalType(a.Signal.Type)
	if err != nil || t == VPDQ {
		return false
	}
	sig, err := SignalFromBytes(t, a.Signal.Value)
	if err != nil || len(a.Labels) > MaxLabels {
		return false
	}
	for i, l := range a.Labels {
		prev := ""
		if i > 0 {
			prev = a.Labels[i-1]
		}
		if validateLabel(l, prev, i == 0) != nil {
			return false
		}
	}
	if a.ContentId != "" && validateText("content id", a.ContentId, MaxContentIDSize, false) != nil {
		return false
	}
	if a.ExpiresUnixMs < 0 || a.ExpiresUnixMs != 0 && a.ExpiresUnixMs <= e.TimeUnixMs {
		return false
	}
	if a.Note != "" && validateText("note", a.Note, MaxTextSize, true) != nil {
		return false
	}
	if a.Quality != nil && (*a.Quality > 100 || t != PDQ) {
		return false
	}
	*v = entryView{time: e.TimeUnixMs, op: OpAdd, sig: sig, expires: a.ExpiresUnixMs, sigHash: sigHash(&sig)}
	return true
}
