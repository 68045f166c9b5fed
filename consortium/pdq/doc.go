// Package pdq computes PDQ perceptual hashes of images, bit for bit as Facebook ThreatExchange's C++
// reference hashing core computes them, and decodes untrusted image files safely for hashing.
//
// Consortium members hash images locally and share only the hashes, so a hash computed here must
// be identical to the one every other member's reference implementation computes from the same
// pixels: one flipped bit can move a pair of near-duplicates past the match threshold. Everything
// in the pipeline therefore follows the reference exactly: luma 0.299 R + 0.587 G + 0.114 B in
// float32 with each product rounded to float32 before it is added, two passes of box filters
// along rows and columns (the Jarosz filter) with the reference's window sizes and summation
// order, a decimation to 64×64 at the reference's sample points, a 16×16 DCT of that, and one
// bit per coefficient set when it exceeds the median. Quality is the reference's gradient sum
// over the 64×64 image divided by 90, capped at 100. Images less than 5 pixels on a side hash
// to [Hash]{} with quality 0.
//
// This package must not resize, crop, rotate or otherwise "improve" an image before hashing: the
// reference core does not (its command-line tool resizes large images to 512×512, but the
// libraries that HMA and python-threatexchange use do not), and any such step changes hashes.
//
// # Pixels
//
// [HashImage] reads each pixel as straight (non-premultiplied) 8-bit RGB, exactly what
// [image/color.NRGBAModel] gives, and ignores alpha. For images stored straight ([image.NRGBA], which
// is what Go's PNG decoder returns for images with an alpha channel) a transparent pixel
// contributes the colour it stores; for images stored premultiplied ([image.RGBA],
// [image.RGBA64]) a fully transparent pixel counts as black and a partly transparent one is
// un-premultiplied. 16-bit channels become 8-bit by v>>8 (that is what [image/color.NRGBAModel] does).
// Pillow instead clips 16-bit grey to 255 when it converts to RGB, so a hash that
// python-threatexchange computed from a 16-bit grey PNG can be reproduced by converting the
// [image.Gray16] to an [image.Gray] with min(v, 255) per pixel before calling [HashImage].
//
// # Orientation
//
// EXIF orientation is ignored, as the reference core and HMA ignore it: the hash is of the pixels
// as stored. The eight dihedral hashes from [HashImageDihedral] are (to within a few bits) the
// hashes of the image rotated and flipped in every way, which are exactly the eight EXIF
// orientations, so matching all eight against a list finds an image whatever orientation flag
// it carries.
//
// # Decoding
//
// [Decode] accepts JPEG, PNG, GIF (the first frame, within its own rectangle), BMP, TIFF and WebP. It reads the image header
// first and refuses an image whose declared width × height exceeds [DecodeOptions.MaxPixels]
// before any pixel buffer is allocated, so a small file declaring a huge image (a decompression
// bomb) costs nothing. Corrupt or truncated input gives an error wrapping [ErrCorrupt] and the
// decoder's own error; it never panics.
//
// JPEG files are decoded by Go's image/jpeg unless a program registers a faster decoder with
// [RegisterJPEGDecoder]: the hashfed commands link internal/jpegturbo, which registers libjpeg-turbo
// when built with cgo. Its pixels are those Pillow gives (so hashes equal python-threatexchange's);
// Go's differ slightly, and the hashes of the two are a few bits apart on some files (none of the
// conformance set's 1600×1004 photos by more than 2). [JPEGDecoderName] says which one is in use,
// and [DecodeOptions.GoJPEG] asks for Go's. The package itself has no C code.
package pdq
