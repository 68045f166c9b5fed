//go:build !race

package pdqindex

// raceEnabled is set when the race detector is on.
const raceEnabled = false
