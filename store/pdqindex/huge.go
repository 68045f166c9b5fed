package pdqindex

import "unsafe"

// hugePage is the size of the pages the kernel is asked to back the index's large arrays with.
const hugePage = 2 << 20

// hugeSlice returns a zeroed slice of n Ts whose whole 2 MiB-aligned pages the kernel is asked to back
// with huge pages (see adviseHuge). T must hold no pointers. A search reads a few thousand random cache
// lines spread over hundreds of megabytes; with 4 KiB pages nearly every one also misses the TLB and
// waits for a page walk, which costs about as much again (measured on an AMD EPYC guest with a 32 MiB
// L3: 56 against 18 ns per random read of a 1 GiB array).
func hugeSlice[T any](n int) []T {
	s := make([]T, n)
	if n > 0 {
		var z T
		adviseHuge(unsafe.Pointer(unsafe.SliceData(s)), uintptr(n)*unsafe.Sizeof(z))
	}
	return s
}
