//go:build !linux

package store

// mmapFlags is zero where MAP_POPULATE does not exist: pages are read as the rebuild touches them.
func mmapFlags(int64) int { return 0 }
