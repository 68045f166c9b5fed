package vpdq

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/hashfed/hashfed/consortium/pdq"
)

// ErrBadText reports a line of the reference's frame-hash text format that does not parse.
var ErrBadText = errors.New("vpdq: bad frame hash line")

// MaxTextFrames bounds the frames [ParseText] reads: ten hours at 30 frames a second.
const MaxTextFrames = 10 * 3600 * 30

// ParseText reads the reference's per-frame output (vpdq-hash-video, and the sample hashes): one
// line per frame, "frame number,quality,PDQ hex,timestamp in seconds". Empty lines are skipped.
// Frame numbers must increase; the timestamp is rounded to whole milliseconds.
func ParseText(r io.Reader) ([]Frame, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), 4096)
	var out []Frame
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" {
			continue
		}
		if len(out) == MaxTextFrames {
			return nil, fmt.Errorf("%w: line %d: more than %d frames", ErrBadText, line, MaxTextFrames)
		}
		f, err := parseLine(s)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrBadText, line, err)
		}
		if len(out) > 0 && f.Number <= out[len(out)-1].Number {
			return nil, fmt.Errorf("%w: line %d: frame %d after frame %d (frame numbers must increase)", ErrBadText, line, f.Number, out[len(out)-1].Number)
		}
		out = append(out, f)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: line %d: %v", ErrBadText, line+1, err)
	}
	return out, nil
}

func parseLine(s string) (Frame, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return Frame{}, fmt.Errorf("%d fields, want 4 (frame,quality,pdq,seconds)", len(parts))
	}
	n, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || n < 0 {
		return Frame{}, fmt.Errorf("frame number %q is not a non-negative integer", parts[0])
	}
	q, err := strconv.Atoi(parts[1])
	if err != nil || q < 0 || q > MaxQuality {
		return Frame{}, fmt.Errorf("quality %q is not an integer from 0 to 100", parts[1])
	}
	h, err := pdq.ParseHash(parts[2])
	if err != nil {
		return Frame{}, err
	}
	sec, err := strconv.ParseFloat(parts[3], 64)
	if err != nil || !(sec >= 0 && sec < 1e9) {
		return Frame{}, fmt.Errorf("timestamp %q is not a number of seconds from 0", parts[3])
	}
	return Frame{Number: n, Quality: q, Hash: h, MS: int64(math.Round(sec * 1000))}, nil
}

// WriteText writes frames in the reference's text format, timestamps with three decimals.
func WriteText(w io.Writer, frames []Frame) error {
	bw := bufio.NewWriter(w)
	for _, f := range frames {
		fmt.Fprintf(bw, "%d,%d,%s,%d.%03d\n", f.Number, f.Quality, f.Hash, f.MS/1000, f.MS%1000)
	}
	return bw.Flush()
}
