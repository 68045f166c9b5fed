//go:build !race

package ffmpeg

const raceEnabled = false
