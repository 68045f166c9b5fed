//go:build linux

package pdqindex

import (
	"syscall"
	"time"
)

// threadCPU returns the CPU time of the calling thread (RUSAGE_THREAD).
func threadCPU() time.Duration { return rusage(1) }

// processCPU returns the CPU time of the process.
func processCPU() time.Duration { return rusage(syscall.RUSAGE_SELF) }

func rusage(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
