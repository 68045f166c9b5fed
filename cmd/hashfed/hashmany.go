package main

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// hashResult is one file's outcome in hashAll.
type hashResult[T any] struct {
	v   T
	err error
}

// hashAll calls hash for every path on one goroutine per CPU (at most one per path), each taking the next
// path, and calls emit with every path's result in the order of paths, as soon as it and those before it
// are done: output keeps the order of the command line while every core decodes. At most a few results
// per worker wait for emit, so memory stays bounded however many paths there are.
func hashAll[T any](paths []string, hash func(string) (T, error), emit func(path string, v T, err error)) {
	workers := min(runtime.GOMAXPROCS(0), len(paths))
	if workers <= 1 {
		for _, p := range paths {
			v, err := hash(p)
			emit(p, v, err)
		}
		return
	}
	// done[i] is closed when results[i] is set; a worker may run ahead of emit by window paths.
	window := 4 * workers
	results := make([]hashResult[T], len(paths))
	done := make([]chan struct{}, len(paths))
	for i := range done {
		done[i] = make(chan struct{})
	}
	slots := make(chan struct{}, window)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				slots <- struct{}{}
				i := int(next.Add(1) - 1)
				if i >= len(paths) {
					<-slots
					return
				}
				v, err := hash(paths[i])
				results[i] = hashResult[T]{v, err}
				close(done[i])
			}
		})
	}
	for i, p := range paths {
		<-done[i]
		emit(p, results[i].v, results[i].err)
		results[i] = hashResult[T]{}
		<-slots
	}
	wg.Wait()
}
