package consortium

import (
	"hash/maphash"
	"math/bits"
)

// sigTable maps signals to their small ids: an open-addressing hash table of 8-byte slots, each the
// top 32 bits of the signal's hash (its tag) and its id plus one (zero is an empty slot). The
// signals themselves live in the state's sigs slice, which the table consults to confirm a match.
// At most half the slots are used, so it costs 16 to 32 bytes a signal, against about 60 for a Go
// map with 33-byte keys, and a lookup-or-insert is one probe sequence.
//
// A signal's home slot is the top bits of its hash, which are the top bits of its tag: growing
// the table moves each slot to the home its tag gives, without hashing any signal again or reading
// the signals (the old slots are in home order, so the new ones are written nearly in order too).
// Where the slots are never shows outside the table: ids are given in the order signals first
// appear, whatever the table does.
type sigTable struct {
	slots []uint64
	shift uint // 64 - log2(len(slots)): a hash's home slot is h >> shift
	n     int
}

const sigTableMinSize = 1024

func newSigTable() sigTable {
	return sigTable{slots: make([]uint64, sigTableMinSize), shift: uint(64 - bits.TrailingZeros(sigTableMinSize))}
}

// sigSeed seeds the hash of every signal table of the process, so that a signal's hash can be
// computed before the state that needs it is at hand (see entryView.sigHash).
var sigSeed = maphash.MakeSeed()

// sigHash is the hash of s in a signal table.
func sigHash(s *Signal) uint64 { return maphash.Comparable(sigSeed, *s) }

func (t *sigTable) hash(s *Signal) uint64 { return sigHash(s) }

// find returns the id of s, or, when absent, the slot where it would go.
func (t *sigTable) find(s *Signal, h uint64, sigs []sigRec) (id uint32, slot int, ok bool) {
	mask := uint64(len(t.slots) - 1)
	tag := h >> 32
	for i := h >> t.shift; ; i = (i + 1) & mask {
		v := t.slots[i]
		if v == 0 {
			return 0, int(i), false
		}
		if v>>32 == tag {
			id := uint32(v) - 1
			if sigs[id].sig == *s {
				return id, int(i), true
			}
		}
	}
}

// lookup returns the id of s.
func (t *sigTable) lookup(s Signal, sigs []sigRec) (uint32, bool) {
	id, _, ok := t.find(&s, t.hash(&s), sigs)
	return id, ok
}

// insert records that s (not yet present, as find reported at slot) has id.
func (t *sigTable) insert(slot int, h uint64, id uint32, sigs []sigRec) {
	t.slots[slot] = h>>32<<32 | uint64(id+1)
	t.n++
	if 2*t.n > len(t.slots) {
		t.grow(sigs)
	}
}

// grow doubles the table. While the table has at most 2^32 slots the tag holds a signal's home
// bits, and the slots move without the signals; a larger table (2^31 signals or more) hashes them
// again.
func (t *sigTable) grow(sigs []sigRec) {
	old := t.slots
	t.slots = make([]uint64, 2*len(old))
	t.shift--
	mask := uint64(len(t.slots) - 1)
	for _, v := range old {
		if v == 0 {
			continue
		}
		var i uint64
		if t.shift >= 32 {
			i = v >> t.shift // v>>32 is the tag, the top 32 bits of the hash
		} else {
			i = t.hash(&sigs[uint32(v)-1].sig) >> t.shift
		}
		for t.slots[i] != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = v
	}
}

// reserve makes room for n signals without growing.
func (t *sigTable) reserve(n int, sigs []sigRec) {
	for 2*n > len(t.slots) {
		t.grow(sigs)
	}
}
