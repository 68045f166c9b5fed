package consortium

import (
	"bytes"
	"testing"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// checkAppendAdd fails t when appendAdd encodes e differently from the protobuf library, or
// declines an add the library encodes with nothing it must decline for.
func checkAppendAdd(t *testing.T, e *pb.Entry) {
	t.Helper()
	want, werr := proto.MarshalOptions{Deterministic: true}.Marshal(e)
	got, ok := appendAdd([]byte("prefix"), e)
	if !ok {
		if !bytes.Equal(got, []byte("prefix")) {
			t.Fatalf("appendAdd declined but appended %x", got[len("prefix"):])
		}
		return
	}
	if werr != nil {
		t.Fatalf("appendAdd encoded %x, but the protobuf library refuses the entry: %v", got, werr)
	}
	if !bytes.Equal(got[len("prefix"):], want) {
		t.Fatalf("appendAdd gave %x, want %x (the library's deterministic encoding)", got[len("prefix"):], want)
	}
}

func TestAppendAddMatchesProto(t *testing.T) {
	q0, q100 := uint32(0), uint32(100)
	pdq := &pb.Signal{Type: "pdq", Value: bytes.Repeat([]byte{0xa5}, 32)}
	long := string(bytes.Repeat([]byte("x"), 300))
	tests := []struct {
		name    string
		e       *pb.Entry
		encodes bool
	}{
		{"full", &pb.Entry{TimeUnixMs: 1700000000000, Op: &pb.Entry_Add{Add: &pb.Add{Signal: pdq, Labels: []string{"behaviour:x", "entity:y"}, ContentId: "c1", ExpiresUnixMs: 1800000000000, Note: "n", Quality: &q100}}}, true},
		{"zero time", &pb.Entry{Op: &pb.Entry_Add{Add: &pb.Add{Signal: pdq}}}, true},
		{"negative time and expiry", &pb.Entry{TimeUnixMs: -5, Op: &pb.Entry_Add{Add: &pb.Add{Signal: pdq, ExpiresUnixMs: -1}}}, true},
		{"quality zero is written", &pb.Entry{TimeUnixMs: 1, Op: &pb.Entry_Add{Add: &pb.Add{Signal: pdq, Quality: &q0}}}, true},
		{"empty add", &pb.Entry{TimeUnixMs: 1, Op: &pb.Entry_Add{Add: &pb.Add{}}}, true},
		{"empty signal", &pb.Entry{TimeUnixMs: 1, Op: &pb.Entry_Add{Add: &pb.Add{Signal: &pb.Signal{}}}}, true},
		{"empty label kept", &pb.Entry{TimeUnixMs: 1, Op: &pb.Entry_Add{Add: &pb.Add{Signal: pdq, Labels: []string{"", "a"}}}}, true},
		{"long fields", &pb.Entry{TimeUnixMs: 1, Op: &pb.Entry_Add{Add: &pb.Add{Signal: pdq, Note: long, ContentId: long, Frames: []byte(long)}}}, true},
		{"frames", &pb.Entry{TimeUnixMs: 1, Op: &pb.Entry_Add{Add: &pb.Add{Signal: &pb.Signal{Type: "vpdq", Value: make([]byte, 32)}, Frames: make([]byte, 37)}}}, true},
		{"not utf-8 label", &pb.Entry{TimeUnixMs: 1, Op: &pb.Entry_Add{Add: &pb.Add{Signal: pdq, Labels: []string{"\xff"}}}}, false},
		{"not utf-8 note", &pb.Entry{TimeUnixMs: 1, Op: &pb.Entry_Add{Add: &pb.Add{Signal: pdq, Note: "\xff"}}}, false},
		{"not utf-8 type", &pb.Entry{TimeUnixMs: 1, Op: &pb.Entry_Add{Add: &pb.Add{Signal: &pb.Signal{Type: "\xff"}}}}, false},
		{"nil add", &pb.Entry{TimeUnixMs: 1, Op: &pb.Entry_Add{}}, false},
		{"revoke", &pb.Entry{TimeUnixMs: 1, Op: &pb.Entry_Revoke{Revoke: &pb.Revoke{Target: &pb.Revoke_Index{Index: 3}}}}, false},
		{"no op", &pb.Entry{TimeUnixMs: 1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := appendAdd(nil, tt.e); ok != tt.encodes {
				t.Fatalf("appendAdd encodes: got %v, want %v", ok, tt.encodes)
			}
			checkAppendAdd(t, tt.e)
		})
	}
}

func TestAppendAddDeclinesUnknownFields(t *testing.T) {
	pdq := &pb.Signal{Type: "pdq", Value: bytes.Repeat([]byte{1}, 32)}
	unknown := protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1)
	for _, where := range []string{"entry", "add", "signal"} {
		e := &pb.Entry{TimeUnixMs: 1, Op: &pb.Entry_Add{Add: &pb.Add{Signal: proto.Clone(pdq).(*pb.Signal)}}}
		var m proto.Message = e
		switch where {
		case "add":
			m = e.GetAdd()
		case "signal":
			m = e.GetAdd().Signal
		}
		m.ProtoReflect().SetUnknown(unknown)
		if _, ok := appendAdd(nil, e); ok {
			t.Errorf("unknown field in the %s: appendAdd encoded it, want declined (the library writes unknown fields)", where)
		}
	}
}

// FuzzAppendAdd holds appendAdd to the protobuf library's deterministic encoding on every entry
// the library decodes.
func FuzzAppendAdd(f *testing.F) {
	q := uint32(7)
	for _, e := range []*pb.Entry{
		{TimeUnixMs: 1700000000000, Op: &pb.Entry_Add{Add: &pb.Add{Signal: &pb.Signal{Type: "pdq", Value: make([]byte, 32)}, Labels: []string{"behaviour:x"}, ContentId: "c", ExpiresUnixMs: 9, Note: "n", Quality: &q}}},
		{TimeUnixMs: 1, Op: &pb.Entry_Add{Add: &pb.Add{Signal: &pb.Signal{Type: "vpdq", Value: make([]byte, 32)}, Frames: make([]byte, 37)}}},
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
		checkAppendAdd(t, &e)
	})
}
