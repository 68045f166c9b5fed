package pdqindex

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"unsafe"
)

// BenchmarkRandomRead measures the memory the index is bound by: random reads of one cache line each over
// 256 MiB, on 4 KiB and on huge pages, one after another (each read's address comes from the one before:
// the latency) or independent (the addresses known in advance: as many in flight as the CPU allows), and
// independent with the addresses prefetched 48 ahead as a search does. Reported per line read.
//
//	go test -run '^$' -bench RandomRead -benchtime 2000000x ./store/pdqindex
func BenchmarkRandomRead(b *testing.B) {
	const size = 256 << 20
	const lines = size / 64
	for _, pages := range []string{"4KiB", "huge"} {
		mem, err := syscall.Mmap(-1, 0, size+hugePage, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
		if err != nil {
			b.Skipf("mmap: %v", err)
		}
		base := addr(&mem[0])
		off := (base+hugePage-1)&^(hugePage-1) - base
		advice := 15 // MADV_NOHUGEPAGE
		if pages == "huge" {
			advice = madvHugepage
		}
		if err := syscall.Madvise(mem[off:off+size], advice); err != nil {
			b.Skipf("madvise: %v", err)
		}
		a := unsafe.Slice((*uint64)(unsafe.Pointer(&mem[off])), size/8)
		// A random cycle through every line, for the reads one after another.
		perm := rand.Perm(lines)
		for i, l := range perm {
			a[l*8] = uint64(perm[(i+1)%lines] * 8)
		}
		idx := make([]uint32, 1<<16)
		addrs := make([]uintptr, len(idx))
		for i := range idx {
			idx[i] = uint32(rand.IntN(lines) * 8)
			addrs[i] = addr(&a[idx[i]])
		}
		b.Run(pages+"/dependent", func(b *testing.B) {
			j := uint64(0)
			for b.Loop() {
				j = a[j]
			}
			sinkU64 = j
		})
		b.Run(pages+"/independent", func(b *testing.B) {
			s, i := uint64(0), 0
			for b.Loop() {
				s += a[idx[i%len(idx)]]
				i++
			}
			sinkU64 = s
		})
		b.Run(pages+"/prefetched", func(b *testing.B) {
			s, i := uint64(0), 0
			for b.Loop() {
				k := i % len(idx)
				if k%prefetchStep == 0 {
					prefetchAhead(addrs, k+prefetchDistance)
				}
				s += a[idx[k]]
				i++
			}
			sinkU64 = s
		})
		syscall.Munmap(mem)
	}
}

var sinkU64 uint64
