package pdqindex

import "unsafe"

// hugePage is the size of the pages the kernel is asked to back the index's large arrays with.
const hugePage = 2 << 20

// A hugeMem keeps the memory of a slice made by hugeSlice mapped: the memory is unmapped some time after
// the hugeMem becomes unreachable, so whoever keeps the slice must keep its hugeMem too.
type hugeMem struct{ size uintptr }

// hugeSlice returns a zeroed slice of n Ts whose whole 2 MiB pages are backed by huge pages where the
// system allows, and the hugeMem that keeps it mapped (nil: the slice is on the Go heap). T must hold no
// pointers. A search reads a few thousand random cache lines spread over hundreds of megabytes; with 4 KiB
// pages nearly every one also misses the TLB and waits for a page walk, which costs about as much again
// (measured on an AMD EPYC guest with a 32 MiB L3: 56 against 18 ns per random read of a 1 GiB array).
//
// Slices of at least hugePage bytes are mapped outside the Go heap (on Linux, see mapHuge), so they are
// always fresh memory that the kernel can back with huge pages; the Go heap reuses memory, whose pages
// are already 4 KiB ones (at 1M hashes in `hashfed-bench match`, only 16 of 139 MB of an index on the heap
// had huge pages). Under the race detector, which does not see memory outside the Go heap, and where
// mapping fails, the slice is on the heap, advised as huge pages (adviseHuge).
func hugeSlice[T any](n int) ([]T, *hugeMem) {
	if n <= 0 {
		return nil, nil
	}
	var z T
	size := uintptr(n) * unsafe.Sizeof(z)
	if size >= hugePage && !raceEnabled {
		if p, m := mapHuge(size); m != nil {
			return unsafe.Slice((*T)(p), n), m
		}
	}
	s := make([]T, n)
	adviseHuge(unsafe.Pointer(unsafe.SliceData(s)), size)
	return s, nil
}
