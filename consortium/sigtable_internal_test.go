package consortium

import (
	"encoding/binary"
	"math/bits"
	"testing"
)

// TestSigTableGrowKeepsEverySignal inserts signals through many doublings of the table, as
// State.signalID does, and looks every one up after each insert batch: growth moves slots by
// their tags alone, so a slot moved to the wrong home would be missed here.
func TestSigTableGrowKeepsEverySignal(t *testing.T) {
	tab := newSigTable()
	var sigs []sigRec
	sigOf := func(i int) Signal {
		s := Signal{Type: MD5}
		binary.LittleEndian.PutUint64(s.Value[:], uint64(i)*0x9e3779b97f4a7c15)
		return s
	}
	const n = 20_000 // the table grows from 1024 slots to 65536
	for i := range n {
		sig := sigOf(i)
		h := tab.hash(&sig)
		if id, _, ok := tab.find(&sig, h, sigs); ok {
			t.Fatalf("signal %d found as id %d before it was inserted", i, id)
		}
		_, slot, _ := tab.find(&sig, h, sigs)
		sigs = append(sigs, sigRec{sig: sig})
		tab.insert(slot, h, uint32(i), sigs)
		if i%997 == 0 || i == n-1 {
			for j := 0; j <= i; j++ {
				if id, ok := tab.lookup(sigOf(j), sigs); !ok || id != uint32(j) {
					t.Fatalf("after %d inserts (%d slots): lookup of signal %d: got id %d, %v; want %d, true", i+1, len(tab.slots), j, id, ok, j)
				}
			}
		}
	}
	if got, want := len(tab.slots), 65536; got != want {
		t.Errorf("slots after %d inserts: got %d, want %d", n, got, want)
	}
	if got := uint(64 - bits.Len64(uint64(len(tab.slots))-1)); tab.shift != got {
		t.Errorf("shift: got %d, want %d for %d slots", tab.shift, got, len(tab.slots))
	}
	if _, ok := tab.lookup(sigOf(n), sigs); ok {
		t.Errorf("lookup of a signal never inserted: found, want absent")
	}
	tab.reserve(3*n, sigs)
	for j := range n {
		if id, ok := tab.lookup(sigOf(j), sigs); !ok || id != uint32(j) {
			t.Fatalf("after reserve: lookup of signal %d: got id %d, %v; want %d, true", j, id, ok, j)
		}
	}
}
