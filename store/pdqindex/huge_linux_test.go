package pdqindex

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// anonHugeKB returns the AnonHugePages of the mapping of this process that holds address p, in kB.
func anonHugeKB(t *testing.T, p uintptr) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if lo, hi, ok := strings.Cut(strings.Fields(line)[0], "-"); ok && !strings.HasSuffix(strings.Fields(line)[0], ":") {
			a, err1 := strconv.ParseUint(lo, 16, 64)
			b, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 == nil && err2 == nil {
				in = uint64(p) >= a && uint64(p) < b
				continue
			}
		}
		if in && strings.HasPrefix(line, "AnonHugePages:") {
			kb, _ := strconv.Atoi(strings.Fields(line)[1])
			return kb
		}
	}
	t.Fatalf("no mapping holds %#x", p)
	return 0
}

func TestHugeSlice(t *testing.T) {
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(mode), "[never]") {
		t.Skipf("transparent huge pages are off or unknown here (%q, %v)", mode, err)
	}
	const n = 4 * hugePage / 4 // 8 MiB of uint32
	fallbacks := vmstat(t, "thp_fault_fallback")
	s, mem := hugeSlice[uint32](n)
	defer runtime.KeepAlive(mem)
	for i, v := range s {
		if v != 0 {
			t.Fatalf("entry %d of a new slice: got %d, want 0", i, v)
		}
	}
	for i := range s {
		s[i] = uint32(i)
	}
	if kb := anonHugeKB(t, uintptr(unsafe.Pointer(&s[n/2]))); kb < 2048 {
		if vmstat(t, "thp_fault_fallback") > fallbacks {
			t.Skipf("the kernel had no huge page to give (thp_fault_fallback rose): not this package's doing")
		}
		if raceEnabled {
			// Under the race detector the slice is Go heap memory, which may have been touched (and so
			// backed by small pages) before this test took it: the madvise cannot be checked here. The
			// mapped path is checked by the run without the race detector (make check's test-norace).
			t.Skipf("race detector: heap-backed slice has %d kB of huge pages", kb)
		}
		t.Errorf("AnonHugePages of the slice's mapping: got %d kB, want at least one 2 MiB page", kb)
	}
	// Pages given back read as zeros; the rest is kept.
	dropPages(unsafe.Pointer(&s[n/4]), n/4*4)
	for i, v := range s {
		inDropped := i >= n/4+1024 && i < n/2-1024 // whole 4 KiB pages of the range
		if inDropped && v != 0 || i < n/4 && v != uint32(i) || i >= n/2 && v != uint32(i) {
			t.Fatalf("entry %d after dropPages of [%d, %d): got %d", i, n/4, n/2, v)
		}
	}
}

// vmstat returns the counter name of /proc/vmstat (0 if absent).
func vmstat(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/vmstat")
	if err != nil {
		t.Skipf("no /proc/vmstat: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), " "); ok && k == name {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// mapped reports whether a mapping of this process holds address p.
func mapped(t *testing.T, p uintptr) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skipf("no /proc/self/maps: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		lo, hi, _ := strings.Cut(strings.Fields(line)[0], "-")
		a, err1 := strconv.ParseUint(lo, 16, 64)
		z, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 == nil && err2 == nil && uint64(p) >= a && uint64(p) < z {
			return true
		}
	}
	return false
}

// TestHugeSliceUnmapped checks that a slice mapped outside the Go heap is aligned to a huge page, zeroed,
// and unmapped once its hugeMem is unreachable (and not before).
func TestHugeSliceUnmapped(t *testing.T) {
	if raceEnabled {
		t.Skip("under the race detector hugeSlice uses the Go heap")
	}
	s, mem := hugeSlice[uint64](hugePage / 8 * 3)
	if mem == nil {
		t.Skip("mapping failed here")
	}
	p := uintptr(unsafe.Pointer(&s[0]))
	if p%hugePage != 0 {
		t.Errorf("slice at %#x: not aligned to %d", p, hugePage)
	}
	for i := range s {
		if s[i] != 0 {
			t.Fatalf("entry %d of a new slice: got %d, want 0", i, s[i])
		}
		s[i] = uint64(i)
	}
	runtime.GC()
	runtime.GC()
	if !mapped(t, p) {
		t.Fatalf("the slice's memory was unmapped while its hugeMem was reachable")
	}
	runtime.KeepAlive(mem)
	s, mem = nil, nil
	for i := 0; ; i++ {
		runtime.GC()
		if !mapped(t, p) {
			return
		}
		if i == 100 {
			t.Fatalf("the slice's memory at %#x is still mapped 100 collections after its hugeMem became unreachable", p)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
