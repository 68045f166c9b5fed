package pdqindex

import (
	"syscall"
	"unsafe"
)

const (
	madvDontneed = 4  // MADV_DONTNEED
	madvHugepage = 14 // MADV_HUGEPAGE
)

// adviseHuge asks Linux to back the whole 2 MiB pages of the n bytes at p, a fresh allocation nothing has
// written to yet, with transparent huge pages (MADV_HUGEPAGE). The kernel gives a huge page at the first
// write to a 2 MiB page that has no page table yet, which is the case for memory the Go runtime has just
// taken from the system (it does not clear that): a large index, whose arrays mostly are, is mostly
// backed by huge pages (measured: 737 of 1,154 MB at 10M hashes). Memory the runtime reuses keeps its
// 4 KiB pages unless khugepaged merges them later (16 of 139 MB at 1M hashes, built after the corpus's
// memory was freed). Where huge pages are off ("never") or unavailable this does nothing: it is a hint,
// and errors are ignored.
func adviseHuge(p unsafe.Pointer, n uintptr) {
	start := (uintptr(p) + hugePage - 1) &^ (hugePage - 1)
	end := (uintptr(p) + n) &^ (hugePage - 1)
	if end > start {
		syscall.Syscall(syscall.SYS_MADVISE, start, end-start, madvHugepage)
	}
}

// dropPages gives the whole 4 KiB pages of the n bytes at p back to the system (MADV_DONTNEED), for
// memory that is no longer used but stays allocated because the rest of its slab is: afterwards they read
// as zeros and take no memory until written again.
func dropPages(p unsafe.Pointer, n uintptr) {
	const page = 4096
	start := (uintptr(p) + page - 1) &^ (page - 1)
	end := (uintptr(p) + n) &^ (page - 1)
	if end > start {
		syscall.Syscall(syscall.SYS_MADVISE, start, end-start, madvDontneed)
	}
}
