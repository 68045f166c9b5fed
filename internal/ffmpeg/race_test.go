//go:build race

package ffmpeg

// raceEnabled is set when the tests run with -race, which makes PDQ hashing of full-size frames
// about ten times slower: the conformance test then checks the 128×128 set only.
const raceEnabled = true
