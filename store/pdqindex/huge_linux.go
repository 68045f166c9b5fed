package pdqindex

import (
	"runtime"
	"syscall"
	"unsafe"
)

// mapHuge maps size bytes of zeroed anonymous memory, aligned to hugePage and advised as huge pages
// (MADV_HUGEPAGE), and returns it with the hugeMem whose cleanup unmaps it; nil, nil if mapping fails.
// The mapping is hugePage larger than asked, for the alignment: its unused head and tail are never
// touched, so they take no memory (but for the rest of a last huge page).
func mapHuge(size uintptr) (unsafe.Pointer, *hugeMem) {
	b, err := syscall.Mmap(-1, 0, int(size+hugePage), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, nil
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	off := (base+hugePage-1)&^(hugePage-1) - base
	p := unsafe.Pointer(&b[off])
	// The mapping extends to the end of the last 2 MiB page: advise that page too when at least 3/4 of
	// it is used, so that at most 1/2 MiB of a huge page goes unused.
	adv := size
	if tail := size % hugePage; tail >= hugePage/4*3 {
		adv += hugePage - tail
	}
	adviseHuge(p, adv)
	m := &hugeMem{size: size}
	runtime.AddCleanup(m, func(b []byte) { syscall.Munmap(b) }, b)
	return p, m
}

const (
	madvDontneed = 4  // MADV_DONTNEED
	madvHugepage = 14 // MADV_HUGEPAGE
)

// adviseHuge asks Linux to back the whole 2 MiB pages of the n bytes at p, a fresh allocation nothing has
// written to yet, with transparent huge pages (MADV_HUGEPAGE). The kernel gives a huge page at the first
// write to a 2 MiB page that has no page table yet: the case for a new mapping (mapHuge), not for Go heap
// memory the runtime reuses, which keeps its 4 KiB pages unless khugepaged merges them later. Where huge
// pages are off ("never") or unavailable this does nothing: it is a hint, and errors are ignored.
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
