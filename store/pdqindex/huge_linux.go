package pdqindex

import (
	"syscall"
	"unsafe"
)

const (
	madvDontneed = 4  // MADV_DONTNEED
	madvHugepage = 14 // MADV_HUGEPAGE
)

// adviseHuge asks Linux to back the whole 2 MiB pages of the n bytes at p, which must be a fresh zeroed
// allocation nothing has written to yet, with transparent huge pages: MADV_HUGEPAGE marks the range, and
// MADV_DONTNEED drops the 4 KiB pages zeroing it faulted in (they hold only zeros, and a private anonymous
// page reads as zeros after it), so the first write to each 2 MiB page faults in a huge page. Where huge
// pages are off ("never"), unavailable or refused, the range stays as it was: this is a hint, errors are
// ignored, and the contents are zeros either way.
func adviseHuge(p unsafe.Pointer, n uintptr) {
	start := (uintptr(p) + hugePage - 1) &^ (hugePage - 1)
	end := (uintptr(p) + n) &^ (hugePage - 1)
	if end <= start {
		return
	}
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, start, end-start, madvHugepage); errno != 0 {
		return
	}
	syscall.Syscall(syscall.SYS_MADVISE, start, end-start, madvDontneed)
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
