package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

func TestHashAll(t *testing.T) {
	for _, procs := range []int{1, 2, 4} {
		for _, n := range []int{0, 1, 3, 50} {
			t.Run(fmt.Sprintf("procs=%d/n=%d", procs, n), func(t *testing.T) {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				var paths []string
				for i := range n {
					paths = append(paths, fmt.Sprint("file-", i))
				}
				var running, most atomic.Int64
				hash := func(p string) (string, error) {
					r := running.Add(1)
					for m := most.Load(); r > m && !most.CompareAndSwap(m, r); m = most.Load() {
					}
					time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond) // finish out of order
					running.Add(-1)
					if p == "file-2" {
						return "", errors.New("unreadable")
					}
					return "hash of " + p, nil
				}
				var got []string
				hashAll(paths, hash, func(p, v string, err error) {
					if err != nil {
						got = append(got, p+": "+err.Error())
						return
					}
					got = append(got, v)
				})
				var want []string
				for _, p := range paths {
					if p == "file-2" {
						want = append(want, p+": unreadable")
						continue
					}
					want = append(want, "hash of "+p)
				}
				if !slices.Equal(got, want) {
					t.Errorf("got %q, want %q (every path once, in order)", got, want)
				}
				if m := most.Load(); m > int64(procs) {
					t.Errorf("%d hashes ran at once, want at most GOMAXPROCS = %d", m, procs)
				}
			})
		}
	}
}
