//go:build !linux

package pdqindex

import "time"

// threadCPU and processCPU are not measured outside Linux: the CPU metrics read 0.
func threadCPU() time.Duration  { return 0 }
func processCPU() time.Duration { return 0 }
