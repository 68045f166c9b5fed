package consortium

import "hash/maphash"

// sigTable maps signals to their small ids: an open-addressing hash table of 8-byte slots, each the
// top 32 bits of the signal's hash and its id plus one (zero is an empty slot). The signals
// themselves live in the state's sigs slice, which the table consults to confirm a match. At most
// half the slots are used, so it costs 16 to 32 bytes a signal, against about 60 for a Go map with
// 33-byte keys, and a lookup-or-insert is one probe sequence.
type sigTable struct {
	seed  maphash.Seed
	slots []uint64
	n     int
}

func newSigTable() sigTable {
	return sigTable{seed: maphash.MakeSeed(), slots: make([]uint64, 1024)}
}

func (t *sigTable) hash(s *Signal) uint64 {
	return maphash.Comparable(t.seed, *s)
}

// find returns the id of s, or, when absent, the slot where it would go.
func (t *sigTable) find(s *Signal, h uint64, sigs []sigRec) (id uint32, slot int, ok bool) {
	mask := uint64(len(t.slots) - 1)
	tag := h >> 32
	for i := h & mask; ; i = (i + 1) & mask {
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

func (t *sigTable) grow(sigs []sigRec) {
	old := t.slots
	t.slots = make([]uint64, 2*len(old))
	mask := uint64(len(t.slots) - 1)
	for _, v := range old {
		if v == 0 {
			continue
		}
		id := uint32(v) - 1
		h := t.hash(&sigs[id].sig)
		i := h & mask
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
