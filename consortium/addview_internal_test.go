package consortium

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// encodeEntryByDecoding is EncodeEntry as it was before addView: the view always decoded from the
// bytes. EncodeEntry must return exactly what it returns.
func encodeEntryByDecoding(e *pb.Entry) ([]byte, Decoded, error) {
	raw, ok := appendAdd(nil, e)
	if !ok {
		var err error
		if raw, err = (proto.MarshalOptions{Deterministic: true}).Marshal(e); err != nil {
			return nil, Decoded{}, fmt.Errorf("%w: encode entry: %v", ErrInvalidEntry, err)
		}
	}
	d := Decode(raw)
	if d.err != nil {
		return nil, Decoded{}, d.err
	}
	return raw, d, nil
}

// checkAddView fails t when addView accepts an add that Decode of its bytes refuses or views
// differently, or when EncodeEntry differs from encodeEntryByDecoding in bytes, view or error. It
// reports whether addView accepted e.
func checkAddView(t *testing.T, e *pb.Entry) bool {
	t.Helper()
	wantRaw, wantDec, wantErr := encodeEntryByDecoding(e)
	gotRaw, gotDec, gotErr := EncodeEntry(e)
	if !bytes.Equal(gotRaw, wantRaw) {
		t.Fatalf("EncodeEntry bytes: got %x, want %x", gotRaw, wantRaw)
	}
	if !reflect.DeepEqual(gotDec, wantDec) {
		t.Fatalf("EncodeEntry view: got %+v, want %+v", gotDec, wantDec)
	}
	if !reflect.DeepEqual(gotErr, wantErr) {
		t.Fatalf("EncodeEntry error: got %v, want %v", gotErr, wantErr)
	}
	raw, ok := appendAdd(nil, e)
	if !ok {
		return false
	}
	var v entryView
	if !addView(e, raw, &v) {
		return false
	}
	d := Decode(raw)
	if d.err != nil {
		t.Fatalf("addView accepted an add that Decode refuses: %v", d.err)
	}
	if !reflect.DeepEqual(v, d.v) {
		t.Fatalf("addView: got %+v, want %+v (Decode of the bytes)", v, d.v)
	}
	return true
}

func TestAddViewMatchesDecode(t *testing.T) {
	pdqVal := bytes.Repeat([]byte{0xa5}, 32)
	pdq := func() *pb.Signal { return &pb.Signal{Type: "pdq", Value: bytes.Clone(pdqVal)} }
	add := func(mod func(a *pb.Add)) *pb.Entry {
		a := &pb.Add{Signal: pdq(), Labels: []string{"behaviour:glorification-of-terrorist-acts"}}
		mod(a)
		return &pb.Entry{TimeUnixMs: 1700000000000, Op: &pb.Entry_Add{Add: a}}
	}
	q := func(v uint32) *uint32 { return &v }
	many := make([]string, MaxLabels+1)
	for i := range many {
		many[i] = fmt.Sprintf("incident:i%02d", i)
	}
	unknown := protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1)
	withUnknown := add(func(*pb.Add) {})
	withUnknown.GetAdd().ProtoReflect().SetUnknown(unknown)
	tests := []struct {
		name string
		e    *pb.Entry
		fast bool  // addView accepts it
		want error // EncodeEntry's error (errors.Is), nil for a valid entry
	}{
		{"pdq with label", add(func(*pb.Add) {}), true, nil},
		{"every field", add(func(a *pb.Add) {
			a.Labels = []string{"behaviour:threat-incitement", "content:manifesto", "entity:unsc-2024-05/QDe.115", "incident:x1", "lang:ar"}
			a.ContentId, a.ExpiresUnixMs, a.Note, a.Quality = "post/1", 1800000000000, "line one\nline two", q(100)
		}), true, nil},
		{"md5, no labels", add(func(a *pb.Add) { a.Signal, a.Labels = &pb.Signal{Type: "md5", Value: make([]byte, 16)}, nil }), true, nil},
		{"sha256", add(func(a *pb.Add) { a.Signal = &pb.Signal{Type: "sha256", Value: make([]byte, 32)} }), true, nil},
		{"url", add(func(a *pb.Add) { a.Signal = &pb.Signal{Type: "url", Value: make([]byte, 32)} }), true, nil},
		{"quality zero", add(func(a *pb.Add) { a.Quality = q(0) }), true, nil},
		{"note at the limit", add(func(a *pb.Add) { a.Note = strings.Repeat("n", MaxTextSize) }), true, nil},
		{"content id at the limit", add(func(a *pb.Add) { a.ContentId = strings.Repeat("c", MaxContentIDSize) }), true, nil},
		{"thirty-two labels", add(func(a *pb.Add) { a.Labels = many[:MaxLabels] }), true, nil},

		{"zero time", &pb.Entry{Op: &pb.Entry_Add{Add: &pb.Add{Signal: pdq()}}}, false, ErrInvalidEntry},
		{"negative time", &pb.Entry{TimeUnixMs: -1, Op: &pb.Entry_Add{Add: &pb.Add{Signal: pdq()}}}, false, ErrInvalidEntry},
		{"no signal", add(func(a *pb.Add) { a.Signal = nil }), false, ErrInvalidSignal},
		{"empty signal", add(func(a *pb.Add) { a.Signal = &pb.Signal{} }), false, ErrUnknownSignalType},
		{"unknown type", add(func(a *pb.Add) { a.Signal.Type = "sha1" }), false, ErrUnknownSignalType},
		{"type in capitals", add(func(a *pb.Add) { a.Signal.Type = "PDQ" }), false, ErrUnknownSignalType},
		{"short pdq", add(func(a *pb.Add) { a.Signal.Value = pdqVal[:31] }), false, ErrInvalidSignal},
		{"long pdq", add(func(a *pb.Add) { a.Signal.Value = append(bytes.Clone(pdqVal), 0) }), false, ErrInvalidSignal},
		{"no value", add(func(a *pb.Add) { a.Signal.Value = nil }), false, ErrInvalidSignal},
		{"md5 of 32 bytes", add(func(a *pb.Add) { a.Signal = &pb.Signal{Type: "md5", Value: make([]byte, 32)} }), false, ErrInvalidSignal},
		{"all-zero pdq", add(func(a *pb.Add) { a.Signal.Value = make([]byte, 32) }), false, ErrInvalidSignal},
		{"all-ones pdq", add(func(a *pb.Add) { a.Signal.Value = bytes.Repeat([]byte{0xff}, 32) }), false, ErrInvalidSignal},
		{"unknown behaviour", add(func(a *pb.Add) { a.Labels = []string{"behaviour:nope"} }), false, ErrInvalidLabel},
		{"bare behaviour name", add(func(a *pb.Add) { a.Labels = []string{"threat-incitement"} }), false, ErrInvalidLabel},
		{"american spelling", add(func(a *pb.Add) { a.Labels = []string{"behavior:threat-incitement"} }), false, ErrInvalidLabel},
		{"label with spaces", add(func(a *pb.Add) { a.Labels = []string{" lang:ar"} }), false, ErrInvalidLabel},
		{"empty label", add(func(a *pb.Add) { a.Labels = []string{""} }), false, ErrInvalidLabel},
		{"labels unsorted", add(func(a *pb.Add) { a.Labels = []string{"lang:ar", "incident:x"} }), false, ErrInvalidLabel},
		{"label repeated", add(func(a *pb.Add) { a.Labels = []string{"lang:ar", "lang:ar"} }), false, ErrInvalidLabel},
		{"too many labels", add(func(a *pb.Add) { a.Labels = many }), false, ErrInvalidLabel},
		{"content id with a newline", add(func(a *pb.Add) { a.ContentId = "a\nb" }), false, ErrInvalidEntry},
		{"content id too long", add(func(a *pb.Add) { a.ContentId = strings.Repeat("c", MaxContentIDSize+1) }), false, ErrInvalidEntry},
		{"note too long", add(func(a *pb.Add) { a.Note = strings.Repeat("n", MaxTextSize+1) }), false, ErrInvalidEntry},
		{"negative expiry", add(func(a *pb.Add) { a.ExpiresUnixMs = -1 }), false, ErrInvalidEntry},
		{"expires at its time", add(func(a *pb.Add) { a.ExpiresUnixMs = 1700000000000 }), false, ErrExpired},
		{"quality 101", add(func(a *pb.Add) { a.Quality = q(101) }), false, ErrInvalidEntry},
		{"quality on md5", add(func(a *pb.Add) { a.Signal, a.Quality = &pb.Signal{Type: "md5", Value: make([]byte, 16)}, q(50) }), false, ErrInvalidEntry},
		{"frames on pdq", add(func(a *pb.Add) { a.Frames = []byte{1} }), false, ErrInvalidEntry},
		{"vpdq without frames", add(func(a *pb.Add) { a.Signal = &pb.Signal{Type: "vpdq", Value: make([]byte, 32)} }), false, ErrInvalidEntry},
		{"too large", add(func(a *pb.Add) { a.Frames = make([]byte, MaxEntrySize) }), false, ErrInvalidEntry},
		{"not utf-8 note", add(func(a *pb.Add) { a.Note = "\xff" }), false, ErrInvalidEntry},
		{"not utf-8 label", add(func(a *pb.Add) { a.Labels = []string{"lang:\xff"} }), false, ErrInvalidEntry},
		{"unknown field", withUnknown, false, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkAddView(t, tt.e); got != tt.fast {
				t.Errorf("addView accepts: got %v, want %v", got, tt.fast)
			}
			if _, _, err := EncodeEntry(tt.e); !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Errorf("EncodeEntry: got %v, want %v", err, tt.want)
			}
		})
	}
}

// FuzzAddView holds EncodeEntry, with its view of adds read from the entry, to the bytes, view and
// error of encoding and then decoding, and addView to Decode, on every entry the protobuf library
// decodes.
func FuzzAddView(f *testing.F) {
	q := uint32(7)
	for _, e := range []*pb.Entry{
		{TimeUnixMs: 1700000000000, Op: &pb.Entry_Add{Add: &pb.Add{Signal: &pb.Signal{Type: "pdq", Value: bytes.Repeat([]byte{0x5a}, 32)}, Labels: []string{"behaviour:threat-incitement", "lang:ar"}, ContentId: "c", ExpiresUnixMs: 1700000000009, Note: "n", Quality: &q}}},
		{TimeUnixMs: 1, Op: &pb.Entry_Add{Add: &pb.Add{Signal: &pb.Signal{Type: "md5", Value: make([]byte, 16)}}}},
		{TimeUnixMs: 1, Op: &pb.Entry_Add{Add: &pb.Add{Signal: &pb.Signal{Type: "vpdq", Value: make([]byte, 32)}, Frames: make([]byte, 37)}}},
		{TimeUnixMs: 1, Op: &pb.Entry_Revoke{Revoke: &pb.Revoke{Reason: pb.RevokeReason(1), Target: &pb.Revoke_Index{Index: 0}}}},
	} {
		b, err := proto.Marshal(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var e pb.Entry
		if proto.Unmarshal(b, &e) != nil {
			return
		}
		checkAddView(t, &e)
	})
}

// TestBehaviourLabelsAreCanonical holds validateLabel's shortcut, which takes "behaviour:<name>"
// for a name in Behaviours as canonical without CanonicalLabel, to CanonicalLabel: every such
// label is its own canonical form, and on labels near them the shortcut and CanonicalLabel agree.
func TestBehaviourLabelsAreCanonical(t *testing.T) {
	byCanonicalLabel := func(l string) error {
		c, err := CanonicalLabel(l)
		if err != nil {
			return err
		}
		if c != l {
			return fmt.Errorf("%w: %q is not in canonical form %q", ErrInvalidLabel, truncate(strings.Clone(l), 60), c)
		}
		return nil
	}
	labels := []string{"behaviour:", "behaviour", "behavior:threat-incitement", "content:manifesto", "content:poem", "lang:ar", ""}
	for _, b := range Behaviours {
		l := "behaviour:" + b
		if c, err := CanonicalLabel(l); err != nil || c != l {
			t.Errorf("CanonicalLabel(%q): got %q, %v; want itself, nil", l, c, err)
		}
		labels = append(labels, l, b, l+" ", " "+l, "behaviour: "+b, "behaviour:"+strings.ToUpper(b), l+"x", l[:len(l)-1], "behavior:"+b)
	}
	for _, l := range labels {
		if got, want := validateLabel(l, "", true), byCanonicalLabel(l); !reflect.DeepEqual(got, want) {
			t.Errorf("validateLabel(%q): got %v, want %v (CanonicalLabel's verdict)", l, got, want)
		}
	}
}
