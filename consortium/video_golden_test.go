package consortium_test

import (
	"crypto/sha256"
	"testing"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/protobuf/proto"
)

// videoGoldenCases are the golden cases of the vpdq signal type (PROTOCOL.md section 3.3, "vpdq").
func videoGoldenCases() []goldenCase {
	return []goldenCase{
		{name: "vpdq-video", about: "a video in two vpdq parts under one content id, one part revoked by signal; a part whose value is not its frames' SHA-256 and one repeating a frame are rejected (section 3.3, vpdq)",
			build: func(t *testing.T) (consortium.AuditInput, string) {
				w := newGoldenWorld(t)
				parts, err := consortium.VideoParts(videoFrames(1600, 7), 50)
				if err != nil {
					t.Fatal(err)
				}
				c := w.logs["charlie"] // entries 0 to 2
				for _, p := range parts {
					e, err := consortium.NewVideoAdd(w.at(), p, []string{"behaviour:glorification-of-terrorist-acts"}, consortium.AddOptions{ContentID: "video-1"})
					if err != nil {
						t.Fatal(err)
					}
					c.Append(e) // 3, 4
				}
				rv, _ := consortium.NewRevokeSignal(w.at(), consortium.VideoSignal(parts[1]), pb.RevokeReason_REVOKE_REASON_FALSE_POSITIVE, "")
				c.Append(rv) // 5
				// 6: the value names other frames than the ones carried.
				bad := &pb.Entry{TimeUnixMs: w.at(), Op: &pb.Entry_Add{Add: &pb.Add{
					Signal: consortium.VideoSignal(parts[0][:37]).Proto(), ContentId: "video-2", Frames: parts[0]}}}
				raw, _ := proto.MarshalOptions{Deterministic: true}.Marshal(bad)
				c.AppendRaw(raw)
				// 7: a frame repeated to inflate the part.
				dup := append(append([]byte(nil), parts[1][:37]...), record([32]byte(parts[1][:32]), 100, 2_000_000)...)
				sum := sha256.Sum256(dup)
				rep := &pb.Entry{TimeUnixMs: w.at(), Op: &pb.Entry_Add{Add: &pb.Add{
					Signal: &pb.Signal{Type: "vpdq", Value: sum[:]}, ContentId: "video-3", Frames: dup}}}
				raw, _ = proto.MarshalOptions{Deterministic: true}.Marshal(rep)
				c.AppendRaw(raw)
				return w.bundle(t, nil), ""
			}, check: passes(rejected("charlie 6", "charlie 7"))},
	}
}
