package consortium_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// TestPreloadChangesNothing applies the same logs to two states in batches, one preloading each
// batch first ([consortium.State.Preload]) while another goroutine reads it, and again ahead of
// each entry applied ([consortium.State.PreloadAhead]), and wants the same
// changes, ids and digest: the batches mix new signals (the signal table grows inside batches,
// past what was preloaded), signals listed before, another member's signals, revokes, opinions and
// entries that do not decode.
func TestPreloadChangesNothing(t *testing.T) {
	g := fixture.Genesis(2, fixture.Members("alpha", "bravo")...)
	type entry struct {
		member string
		raw    []byte
	}
	var entries []entry
	sizes := map[string]int{}
	at := int64(0)
	add := func(member string, e *pb.Entry) {
		entries = append(entries, entry{member, fixture.Marshal(e)})
		sizes[member]++
	}
	for i := range 3000 {
		at++
		member := []string{"alpha", "bravo"}[i%2]
		switch {
		case i%7 == 3:
			add(member, fixture.Add(fixture.At(at), fixture.PDQ(i/3), "behaviour:threat-incitement")) // listed before
		case i%11 == 5:
			add(member, fixture.RevokeSignal(fixture.At(at), fixture.PDQ(i/3)))
		case i%13 == 6:
			add(member, fixture.Opinion(fixture.At(at), fixture.PDQ(i/2), pb.Stance_STANCE_AGREE))
		case i%17 == 8:
			entries = append(entries, entry{member, []byte{0xff, 0x01}})
			sizes[member]++
		case i%5 == 0:
			add(member, fixture.Add(fixture.At(at), fixture.MD5(i)))
		default:
			add(member, fixture.Add(fixture.At(at), fixture.PDQ(i)))
		}
	}
	apply := func(preload bool) (*consortium.State, []string) {
		s := consortium.NewState(g, nil)
		var changes []string
		s.OnChange(func(c consortium.Change) {
			changes = append(changes, fmt.Sprintf("%v %v %d %s %d %d", c.Kind, c.Signal, c.SignalID, c.Member, c.Index, c.Listers))
		})
		next := map[string]uint64{}
		const batch = 700
		for lo := 0; lo < len(entries); lo += batch {
			es := entries[lo:min(lo+batch, len(entries))]
			decs := make([]consortium.Decoded, len(es))
			for i, e := range es {
				decs[i] = consortium.Decode(e.raw)
			}
			if preload {
				var wg sync.WaitGroup
				wg.Go(func() { s.Preload(decs) })
				wg.Go(func() { s.Preload(decs[len(decs)/2:]) })
				wg.Go(func() {
					for _, d := range decs {
						if sig, ok := d.Added(); ok {
							s.SignalID(sig)
						}
					}
				})
				wg.Wait()
			}
			for i, e := range es {
				if preload {
					s.PreloadAhead(decs, i)
				}
				if err := s.ApplyDecoded(e.member, next[e.member], e.raw, decs[i]); err != nil {
					t.Fatal(err)
				}
				next[e.member]++
			}
		}
		return s, changes
	}
	plain, plainChanges := apply(false)
	pre, preChanges := apply(true)
	if got, want := len(preChanges), len(plainChanges); got != want {
		t.Fatalf("changes: got %d with preloads, want %d (without)", got, want)
	}
	for i := range plainChanges {
		if preChanges[i] != plainChanges[i] {
			t.Fatalf("change %d: got %q with preloads, want %q", i, preChanges[i], plainChanges[i])
		}
	}
	if got, want := pre.NumSignalIDs(), plain.NumSignalIDs(); got != want || got < 2000 {
		t.Errorf("signal ids: got %d with preloads, want %d (and at least 2000, to grow the table inside batches)", got, want)
	}
	if got, want := pre.Digest(), plain.Digest(); got != want {
		t.Errorf("digest: got %x with preloads, want %x", got, want)
	}
	if _, n := plain.Rejections(); n == 0 {
		t.Errorf("no rejections: the logs should hold entries that break rules")
	}
}
