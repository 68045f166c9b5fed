package consortium_test

import (
	"fmt"
	"testing"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// benchLogs builds members logs of perLog entries each (mostly PDQ and MD5 adds with labels, about
// 5% revokes and 5% opinions), with a signed checkpoint every ckEvery entries, as a member signs
// about once a second while its log grows.
func benchLogs(b *testing.B, members, perLog, ckEvery int) (*consortium.Genesis, consortium.Logs, map[string][][]byte) {
	b.Helper()
	ids := make([]string, members)
	for i := range ids {
		ids[i] = fmt.Sprintf("member-%02d", i)
	}
	g := fixture.Genesis(members/2+1, fixture.Members(ids...)...)
	logs := consortium.Logs{}
	cps := map[string][][]byte{}
	for mi, id := range ids {
		l := fixture.NewLog(g.ID, fixture.Key(id))
		for i := 0; i < perLog; i++ {
			t := fixture.At(int64(i))
			n := mi*perLog + i
			var e *pb.Entry
			switch {
			case i%20 == 19:
				prev := fixture.PDQ(n - 1) // entry i-1 (i-1 ≡ 18 mod 20) is an add
				if (i-1)%3 == 0 {
					prev = fixture.MD5(n - 1)
				}
				e = fixture.RevokeSignal(t, prev)
			case i%20 == 9:
				e = fixture.Opinion(t, fixture.PDQ((n+perLog)%(members*perLog)), pb.Stance_STANCE_AGREE)
			case i%3 == 0:
				e = fixture.Add(t, fixture.MD5(n), "behaviour:threat-incitement")
			default:
				e = fixture.Add(t, fixture.PDQ(n), "behaviour:glorification-of-terrorist-acts", "lang:ar")
			}
			l.Append(e)
			if (i+1)%ckEvery == 0 || i == perLog-1 {
				cps[id] = append(cps[id], l.Checkpoint())
			}
		}
		logs[id] = l.Entries
	}
	return g, logs, cps
}

// BenchmarkVerifyReplay verifies and replays 10 members' logs of 100,000 entries each (1,000,000 in
// all): for every signed checkpoint, the signature is checked and the root recomputed over the
// entries it covers, then the entries are applied to the state. Reported as entries/s.
func BenchmarkVerifyReplay(b *testing.B) {
	const members, perLog, ckEvery = 10, 100_000, 10_000
	g, logs, cps := benchLogs(b, members, perLog, ckEvery)
	total := 0
	for _, l := range logs {
		total += len(l)
	}
	b.ResetTimer()
	for b.Loop() {
		s := consortium.NewState(g, logs.Reader())
		s.Grow(total)
		for m, entries := range logs {
			tree := consortium.NewTree()
			for _, msg := range cps[m] {
				cp, err := consortium.OpenCheckpoint(g.ID, s, msg)
				if err != nil {
					b.Fatal(err)
				}
				start := tree.Size()
				next, _, err := consortium.VerifyRange(tree, entries[start:cp.Size], cp)
				if err != nil {
					b.Fatal(err)
				}
				for i := start; i < cp.Size; i++ {
					if err := s.Apply(m, i, entries[i]); err != nil {
						b.Fatal(err)
					}
				}
				tree = next
			}
		}
		if _, n := s.Rejections(); n != 0 {
			b.Fatalf("%d rejections", n)
		}
	}
	b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkEncodeAdd encodes a PDQ add with one label and views it for the check and the apply
// ([consortium.EncodeEntry]), as a node does for each add it appends to its own log.
func BenchmarkEncodeAdd(b *testing.B) {
	es := make([]*pb.Entry, 1024)
	for i := range es {
		es[i] = fixture.Add(fixture.At(int64(i)), fixture.PDQ(i), "behaviour:glorification-of-terrorist-acts")
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, err := consortium.EncodeEntry(es[i%len(es)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkApplyOwnAdds applies adds of new PDQ signals to one member's log in batches of 10,000,
// as a node applies a group commit of its own adds: encoded and viewed first
// ([consortium.EncodeEntry]), then each batch applied, preloading ahead ([consortium.State.PreloadAhead]) or not.
// The state grows to b.N signals.
func BenchmarkApplyOwnAdds(b *testing.B) {
	for _, preload := range []bool{false, true} {
		b.Run(fmt.Sprintf("preload=%v", preload), func(b *testing.B) {
			g := fixture.Genesis(1, fixture.Members("alpha")...)
			s := consortium.NewState(g, nil)
			const batch = 10_000
			raws := make([][]byte, 0, batch)
			decs := make([]consortium.Decoded, 0, batch)
			n := 0
			flush := func() {
				b.StartTimer()
				for i, raw := range raws {
					if preload {
						s.PreloadAhead(decs, i)
					}
					if err := s.ApplyDecoded("alpha", uint64(n+i), raw, decs[i]); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				n += len(raws)
				raws, decs = raws[:0], decs[:0]
			}
			b.StopTimer()
			for i := range b.N {
				raw, d, err := consortium.EncodeEntry(fixture.Add(fixture.At(int64(i)), fixture.PDQ(i), "behaviour:threat-incitement"))
				if err != nil {
					b.Fatal(err)
				}
				raws, decs = append(raws, raw), append(decs, d)
				if len(raws) == batch {
					flush()
				}
			}
			flush()
			if got, _ := s.Counts(); got != b.N {
				b.Fatalf("signals listed: got %d, want %d", got, b.N)
			}
		})
	}
}
