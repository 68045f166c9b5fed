package pdq

import (
	"image"
	"math"
	"slices"
	"sync"
)

// minDim is the smallest width and height the reference hashes; smaller images give the zero
// hash and quality 0.
const minDim = 5

// dctMatrix is the reference's 16×64 DCT-II matrix, rows 1..16 of the 64-point DCT (row 0, the
// mean, is left out): sqrt(2/64) rounded to float32, times cos(π/128 · (i+1) · (2j+1)) in
// float64, the product rounded to float32.
var dctMatrix [16][64]float32

func init() {
	scale := float64(float32(math.Sqrt(2.0 / 64.0)))
	for i := range 16 {
		for j := range 64 {
			dctMatrix[i][j] = float32(scale * math.Cos((math.Pi/2/64.0)*float64(i+1)*float64(2*j+1)))
		}
	}
}

// HashImage returns the PDQ hash of img and its quality, 0 to 100 (low for images with little
// detail, whose hashes match unrelated images more easily; the consortium's default quality gate
// is 50). Pixels are read as described in the package documentation. An image less than 5 pixels
// wide or high gives [Hash]{} and quality 0.
//
// HashImage is safe for concurrent use. It hashes every pixel of img.Bounds(), streaming the rows
// through work buffers of about (window+17) × width float32s, where window is about height/128,
// so hashing a large image needs little memory beyond the image itself. Images from untrusted
// files should come from [Decode], which bounds their size.
func HashImage(img image.Image) (Hash, int) {
	w := getWork()
	defer putWork(w)
	if !w.downsample(img, true) {
		return Hash{}, 0
	}
	var h Hash
	w.dct()
	w.bits(&w.b16, &h)
	return h, w.quality
}

// HashImageDihedral returns the hashes of img in all eight orientations ([Dihedral], indexed by
// [Orientation]) and its quality, computed from one DCT as the reference does, without
// transforming the pixels.
//
// It follows the reference's dihedral function in one detail that [HashImage] does not: an image
// of exactly 64×64 pixels is box-filtered like any other (window 1, which is the identity except
// for float rounding), where [HashImage] takes its pixels as the 64×64 downsample directly. The
// two give the same hash for almost every image.
func HashImageDihedral(img image.Image) (Dihedral, int) {
	w := getWork()
	defer putWork(w)
	var d Dihedral
	if !w.downsample(img, false) {
		return d, 0
	}
	w.dct()
	a := &w.b16
	t := &w.aux
	w.bits(a, &d[Original])
	// The reference's sign patterns: DCT row i and column j here are frequencies i+1 and j+1,
	// so an even index is an odd frequency, which changes sign under a flip along its axis.
	for i := range 16 {
		for j := range 16 {
			t[j][i] = flipSign(a[i][j], j&1 == 0)
		}
	}
	w.bits(t, &d[Rotate90])
	for i := range 16 {
		for j := range 16 {
			t[i][j] = flipSign(a[i][j], (i+j)&1 == 1)
		}
	}
	w.bits(t, &d[Rotate180])
	for i := range 16 {
		for j := range 16 {
			t[j][i] = flipSign(a[i][j], i&1 == 0)
		}
	}
	w.bits(t, &d[Rotate270])
	for i := range 16 {
		for j := range 16 {
			t[i][j] = flipSign(a[i][j], i&1 == 0)
		}
	}
	w.bits(t, &d[FlipX])
	for i := range 16 {
		for j := range 16 {
			t[i][j] = flipSign(a[i][j], j&1 == 0)
		}
	}
	w.bits(t, &d[FlipY])
	for i := range 16 {
		for j := range 16 {
			t[j][i] = a[i][j]
		}
	}
	w.bits(t, &d[FlipPlus1])
	for i := range 16 {
		for j := range 16 {
			t[j][i] = flipSign(a[i][j], (i+j)&1 == 1)
		}
	}
	w.bits(t, &d[FlipMinus1])
	return d, w.quality
}

func flipSign(v float32, neg bool) float32 {
	if neg {
		return -v
	}
	return v
}

// work holds the buffers of one hash computation. They are pooled: hashing a 512×512 image then
// allocates only a few bytes.
type work struct {
	luma   []float32 // rowGroup rows of luma
	rowOut []float32 // rowGroup rows after the first box filter along rows
	col1   colBox    // first box filter along columns, full width
	c1     []float32 // rowGroup rows out of col1, waiting for the second filter along rows
	c1n    int       // rows waiting in c1
	sums   []float32 // rowGroup rows of running sums of the second filter along rows
	samp   []float32 // rowGroup rows of the 64 sampled columns of the second filter along rows
	col2   colBox    // second box filter along columns, 64 sampled columns only
	out2   []float32 // one row out of col2

	width  int
	rowWin int       // box window along rows (from the width)
	colIdx [64]int   // the column sampled for each output column
	colCnt [64]int32 // the window count of the second row filter at each sampled column
	rowIdx [64]int   // the row sampled for each output row

	buf64   [64][64]float32 // the 64×64 downsample
	t16x64  [16][64]float32 // DCT intermediate
	b16     [16][16]float32 // DCT output
	aux     [16][16]float32 // a dihedral transform of b16
	sorted  [256]float32    // scratch for the median
	quality int
}

// rowGroup is how many rows the filters along rows run at once: independent running sums let the
// CPU overlap their additions, which for one row are a chain of dependent float adds.
const rowGroup = 4

// maxPooledFloats bounds the buffers kept in the pool, so that one very wide image does not pin
// its buffers for the life of the process.
const maxPooledFloats = 1 << 20

var workPool = sync.Pool{New: func() any { return new(work) }}

func getWork() *work { return workPool.Get().(*work) }

func putWork(w *work) {
	if cap(w.luma)+cap(w.rowOut)+cap(w.c1)+cap(w.sums)+cap(w.col1.ring) > maxPooledFloats {
		return
	}
	workPool.Put(w)
}

// grow returns s resized to n elements, reusing its storage when it is big enough.
func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// jaroszWindow is the reference's box-filter window for a dimension being reduced to 64: half of
// dimension/64, rounded up, so that two passes cover each downsampled pixel's block.
func jaroszWindow(dim int) int {
	return (dim + 2*64 - 1) / (2 * 64)
}

// downsample fills w.buf64 with the reference's 64×64 downsample of img's luma and w.quality
// with its quality. It returns false, leaving both alone, when img is too small to hash. With
// shortcut64 set, a 64×64 image is taken as its own downsample, as the reference's single-hash
// function does.
func (w *work) downsample(img image.Image, shortcut64 bool) bool {
	b := img.Bounds()
	width, height := b.Dx(), b.Dy()
	if width < minDim || height < minDim {
		return false
	}
	rows := lumaReader(img)
	if shortcut64 && width == 64 && height == 64 {
		for y := range 64 {
			rows.row(y, w.buf64[y][:])
		}
		w.quality = quality(&w.buf64)
		return true
	}
	w.setup(width, height)
	// The reference filters along rows, then along columns, then along rows and along columns
	// again, each pass over the whole image, and samples 64×64 points of the result. This runs the
	// same arithmetic in the same order as a pipeline over the rows, so that only a band of rows is
	// held at a time: each row of luma goes through the first row filter, into the first column
	// filter's window, out of it (some rows later) through the second row filter, whose output is
	// kept only at the 64 sampled columns, and into the second column filter, whose output is kept
	// only at the 64 sampled rows.
	for y := 0; y < height; y += rowGroup {
		n := min(rowGroup, height-y)
		for k := range n {
			rows.row(y+k, w.luma[k*width:(k+1)*width])
		}
		w.boxRows(n)
		for k := range n {
			if w.col1.push(w.rowOut[k*width:(k+1)*width], w.c1Slot()) {
				w.c1Added()
			}
		}
	}
	for w.col1.flush(w.c1Slot()) {
		w.c1Added()
	}
	w.drainC1()
	for w.col2.flush(w.out2) {
		w.sampleRow()
	}
	w.quality = quality(&w.buf64)
	return true
}

// setup sizes the buffers and computes the sampling tables for a width×height image.
func (w *work) setup(width, height int) {
	w.width = width
	w.rowWin = jaroszWindow(width)
	colWin := jaroszWindow(height)
	w.luma = grow(w.luma, rowGroup*width)
	w.rowOut = grow(w.rowOut, rowGroup*width)
	w.c1 = grow(w.c1, rowGroup*width)
	w.sums = grow(w.sums, rowGroup*width)
	w.samp = grow(w.samp, rowGroup*64)
	w.out2 = grow(w.out2, 64)
	w.c1n = 0
	w.col1.reset(width, colWin)
	w.col2.reset(64, colWin)
	full := w.rowWin
	half := (full + 2) / 2
	for i := range 64 {
		// The reference samples the centre of each of 64 equal parts, computed in float64.
		w.rowIdx[i] = int(((float64(i) + 0.5) * float64(height)) / 64)
		c := int(((float64(i) + 0.5) * float64(width)) / 64)
		w.colIdx[i] = c
		// The number of inputs in the window that the box filter's output at index c covers:
		// growing from half at the start, full in the middle, shrinking at the end.
		switch {
		case c < full-half+1:
			w.colCnt[i] = int32(half + c)
		case c < width-half+1:
			w.colCnt[i] = int32(full)
		default:
			w.colCnt[i] = int32(full - 1 - (c - (width - half + 1)))
		}
	}
}

// c1Slot is where col1 writes its next output row.
func (w *work) c1Slot() []float32 {
	return w.c1[w.c1n*w.width : (w.c1n+1)*w.width]
}

// c1Added records a row written to c1Slot and runs the second row filter when a group is full.
func (w *work) c1Added() {
	w.c1n++
	if w.c1n == rowGroup {
		w.drainC1()
	}
}

// drainC1 runs the second row filter over the rows waiting in c1 and feeds its sampled columns to
// the second column filter.
func (w *work) drainC1() {
	n := w.c1n
	if n == 0 {
		return
	}
	width := w.width
	if n == rowGroup {
		boxSums4(w.c1[:width], w.c1[width:2*width], w.c1[2*width:3*width], w.c1[3*width:4*width],
			w.sums[:width], w.sums[width:2*width], w.sums[2*width:3*width], w.sums[3*width:4*width], w.rowWin)
	} else {
		for k := range n {
			boxSums1(w.c1[k*width:(k+1)*width], w.sums[k*width:(k+1)*width], w.rowWin)
		}
	}
	for k := range n {
		s := w.sums[k*width : (k+1)*width]
		d := w.samp[k*64 : (k+1)*64]
		for j, c := range w.colIdx {
			d[j] = s[c] / float32(w.colCnt[j])
		}
		if w.col2.push(d, w.out2) {
			w.sampleRow()
		}
	}
	w.c1n = 0
}

// sampleRow copies the row the second column filter has just produced into every row of the
// 64×64 downsample that samples it.
func (w *work) sampleRow() {
	o := w.col2.lastOut
	for i, r := range w.rowIdx {
		if r == o {
			copy(w.buf64[i][:], w.out2)
		}
	}
}

// quality is the reference's quality metric of a 64×64 downsample: the sum over vertically and
// horizontally adjacent pairs of |(u-v)·100/255| truncated to an integer, divided by 90, capped
// at 100.
func quality(a *[64][64]float32) int {
	sum := 0
	for i := range 63 {
		for j := range 64 {
			sum += gradient(a[i][j], a[i+1][j])
		}
	}
	for i := range 64 {
		for j := range 63 {
			sum += gradient(a[i][j], a[i][j+1])
		}
	}
	return min(sum/90, 100)
}

func gradient(u, v float32) int {
	d := int(float32(float32(u-v)*100) / 255)
	if d < 0 {
		return -d
	}
	return d
}

// dct computes w.b16 = D · buf64 · Dᵀ with the 16×64 matrix D, summing each dot product in
// index order in float32 with each product rounded before it is added, as the reference does.
func (w *work) dct() {
	for i := range 16 {
		d := &dctMatrix[i]
		t := &w.t16x64[i]
		for j := range 64 {
			var s float32
			for k := range 64 {
				s += float32(d[k] * w.buf64[k][j])
			}
			t[j] = s
		}
	}
	for i := range 16 {
		t := &w.t16x64[i]
		for j := range 16 {
			d := &dctMatrix[j]
			var s float32
			for k := range 64 {
				s += float32(t[k] * d[k])
			}
			w.b16[i][j] = s
		}
	}
}

// bits sets h to the bits of the 16×16 coefficients a: bit 16i+j is set when a[i][j] exceeds the
// median, which (as the reference's Torben median gives it for 256 values) is the 128th smallest.
func (w *work) bits(a *[16][16]float32, h *Hash) {
	s := w.sorted[:]
	for i := range 16 {
		copy(s[16*i:16*i+16], a[i][:])
	}
	slices.Sort(s)
	median := s[127]
	*h = Hash{}
	for i := range 16 {
		for j := range 16 {
			if a[i][j] > median {
				h.setBit(16*i + j)
			}
		}
	}
}
