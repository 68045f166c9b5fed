//go:build !amd64

package pdqindex

// prefetch does nothing on this architecture: the search's later phases read the lines themselves.
func prefetch(addrs []uintptr) {}
