// Package ffmpeg decodes video files for hashing by running Debian's ffmpeg and ffprobe as
// subprocesses, and hashes the frames with vPDQ ([vpdq]).
//
// Why a subprocess and not a Go binding of libav: video containers and codecs are the largest
// attack surface a hashing node has, and the files come from anywhere. In a child process a
// decoder crash, hang or memory blow-up cannot take the node down or corrupt its state; the
// process can be killed when its context ends; no cgo enters the build (the node stays one static
// binary that cross-compiles), and the decoder is the distribution's, patched by its security
// updates rather than pinned in go.mod. The cost is one pipe copy of each sampled frame, small
// beside decoding and hashing it.
//
// The decoding follows the vPDQ reference: the first video stream, every decoded frame in
// decoding order (no frame rate conversion), converted to RGB24 by swscale with the area filter,
// at the stream's own size or a square downsample size. Bounds ([Config]) are checked on the
// probe before decoding starts and again while frames stream in, since a file's header may lie:
// pixels per frame, hashed frames, duration, and the caller's context for time.
package ffmpeg
