// Package vpdq is vPDQ, Meta's video hash: the PDQ hash ([pdq.HashImage]) of sampled video frames,
// each with its frame number, quality and timestamp, and the rule that decides whether two videos
// match from the share of frames that match in each direction.
//
// The package is pure, like its parent: it hashes frames it is given and compares frame lists,
// but it never decodes a video file, starts a process or touches the disk. Decoding is
// internal/ffmpeg's job. What it reproduces of the reference (facebook/ThreatExchange vpdq, and
// python-threatexchange's vpdq signal type):
//
//   - Sampling: with s seconds per hash and a frame rate of f, frame n (counted from 0 in decoding
//     order) is hashed when n is a multiple of max(1, ⌊s·f⌋); s = 0 hashes every frame.
//   - A frame's timestamp is n / f seconds; the reference prints it with three decimals, and this
//     package keeps it in whole milliseconds, n·1000/f rounded to the nearest.
//   - Frames are hashed by PDQ from their RGB pixels, at the video's own size or first scaled to a
//     square "downsample" size with ffmpeg's area filter (the reference's
//     --downsampleFrameDimension).
//   - Matching ([Compare]): keep frames of quality at least Q, drop frames whose hash repeats an
//     earlier frame's exactly, then count the query's frames that are within Hamming distance D
//     (inclusive) of some frame of the compared video, and the compared video's frames within D of
//     some frame of the query. Both counts are percentages of the filtered frame lists; the videos
//     match when each reaches its threshold.
package vpdq
