//go:build !linux

package pdqindex

import "unsafe"

// adviseHuge does nothing outside Linux.
func adviseHuge(p unsafe.Pointer, n uintptr) {}

// dropPages does nothing outside Linux.
func dropPages(p unsafe.Pointer, n uintptr) {}
