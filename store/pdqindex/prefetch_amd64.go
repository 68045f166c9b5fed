package pdqindex

// prefetch asks the CPU to bring the cache line of each address of addrs into its caches (PREFETCHT0),
// without waiting for any: the misses overlap as far as the CPU's miss buffers allow, and, unlike loads,
// the prefetches do not hold up the instructions after them. An address need not be valid.
//
//go:noescape
func prefetch(addrs []uintptr)
