//go:build linux

package store

import (
	"syscall"
	"testing"
)

func TestMmapFlags(t *testing.T) {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		t.Skip("sysinfo:", err)
	}
	total := int64(si.Totalram) * int64(si.Unit)
	for _, c := range []struct {
		size int64
		want int
	}{
		{0, 0},                            // a new file: nothing to read
		{1 << 20, syscall.MAP_POPULATE},   // small: read it front to back at open
		{total / 2, syscall.MAP_POPULATE}, // up to half of memory
		{total/2 + 1, 0},                  // larger: let the rebuild fault pages in
		{4 * total, 0},                    // a store far larger than memory
	} {
		if got := mmapFlags(c.size); got != c.want {
			t.Errorf("mmapFlags(%d) with %d bytes of memory = %#x, want %#x", c.size, total, got, c.want)
		}
	}
}
