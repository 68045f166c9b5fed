//go:build !linux

package pdqindex

import "unsafe"

// mapHuge maps nothing outside Linux: hugeSlice uses the Go heap.
func mapHuge(size uintptr) (unsafe.Pointer, *hugeMem) { return nil, nil }

// adviseHuge does nothing outside Linux.
func adviseHuge(p unsafe.Pointer, n uintptr) {}

// dropPages does nothing outside Linux.
func dropPages(p unsafe.Pointer, n uintptr) {}
