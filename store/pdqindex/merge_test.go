package pdqindex

// mergeAll merges x's pending ids into its tables now, as the idle timer would.
func mergeAll(x *Index) {
	x.wmu.Lock()
	defer x.wmu.Unlock()
	x.mergePending()
}
