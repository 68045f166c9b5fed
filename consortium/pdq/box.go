package pdq

// boxRows runs the first box filter along the n rows in w.luma, into w.rowOut.
func (w *work) boxRows(n int) {
	width := w.width
	if n == rowGroup {
		boxRow4(w.luma[:width], w.luma[width:2*width], w.luma[2*width:3*width], w.luma[3*width:4*width],
			w.rowOut[:width], w.rowOut[width:2*width], w.rowOut[2*width:3*width], w.rowOut[3*width:4*width], w.rowWin)
		return
	}
	for k := range n {
		boxRow1(w.luma[k*width:(k+1)*width], w.rowOut[k*width:(k+1)*width], w.rowWin)
	}
}

// The box filter of the reference, along one vector of n values with window full: output o is
// the mean of inputs o-(full-half) .. o+(half-1) that exist, half = (full+2)/2, kept as a running
// sum that adds the entering input and then subtracts the leaving one, each rounded to float32.
// The phases: accumulate half-1 inputs; add and write while the window grows to full; add,
// subtract and write; subtract and write while it shrinks. The functions below all do exactly
// this, for one row, for four rows at once, or (boxSums) keeping the sums without dividing.

func boxRow1(in, out []float32, full int) {
	n := len(in)
	out = out[:n]
	half := (full + 2) / 2
	var sum float32
	cnt := 0
	ri, li, oi := 0, 0, 0
	for ; ri < half-1; ri++ {
		sum += in[ri]
		cnt++
	}
	for ; ri < full; ri++ {
		sum += in[ri]
		cnt++
		out[oi] = sum / float32(cnt)
		oi++
	}
	fc := float32(full)
	for ; ri < n; ri++ {
		sum += in[ri]
		sum -= in[li]
		li++
		out[oi] = sum / fc
		oi++
	}
	for ; oi < n; oi++ {
		sum -= in[li]
		li++
		cnt--
		out[oi] = sum / float32(cnt)
	}
}

func boxRow4(in0, in1, in2, in3, out0, out1, out2, out3 []float32, full int) {
	n := len(in0)
	in1, in2, in3 = in1[:n], in2[:n], in3[:n]
	out0, out1, out2, out3 = out0[:n], out1[:n], out2[:n], out3[:n]
	half := (full + 2) / 2
	var s0, s1, s2, s3 float32
	cnt := 0
	ri, li, oi := 0, 0, 0
	for ; ri < half-1; ri++ {
		s0 += in0[ri]
		s1 += in1[ri]
		s2 += in2[ri]
		s3 += in3[ri]
		cnt++
	}
	for ; ri < full; ri++ {
		s0 += in0[ri]
		s1 += in1[ri]
		s2 += in2[ri]
		s3 += in3[ri]
		cnt++
		c := float32(cnt)
		out0[oi] = s0 / c
		out1[oi] = s1 / c
		out2[oi] = s2 / c
		out3[oi] = s3 / c
		oi++
	}
	fc, r := float32(full), exactRecip(full)
	for ; ri < n; ri++ {
		s0 += in0[ri]
		s1 += in1[ri]
		s2 += in2[ri]
		s3 += in3[ri]
		s0 -= in0[li]
		s1 -= in1[li]
		s2 -= in2[li]
		s3 -= in3[li]
		li++
		if r != 0 {
			out0[oi] = s0 * r
			out1[oi] = s1 * r
			out2[oi] = s2 * r
			out3[oi] = s3 * r
		} else {
			out0[oi] = s0 / fc
			out1[oi] = s1 / fc
			out2[oi] = s2 / fc
			out3[oi] = s3 / fc
		}
		oi++
	}
	for ; oi < n; oi++ {
		s0 -= in0[li]
		s1 -= in1[li]
		s2 -= in2[li]
		s3 -= in3[li]
		li++
		cnt--
		c := float32(cnt)
		out0[oi] = s0 / c
		out1[oi] = s1 / c
		out2[oi] = s2 / c
		out3[oi] = s3 / c
	}
}

func boxSums1(in, sums []float32, full int) {
	n := len(in)
	sums = sums[:n]
	half := (full + 2) / 2
	var sum float32
	ri, li, oi := 0, 0, 0
	for ; ri < half-1; ri++ {
		sum += in[ri]
	}
	for ; ri < full; ri++ {
		sum += in[ri]
		sums[oi] = sum
		oi++
	}
	for ; ri < n; ri++ {
		sum += in[ri]
		sum -= in[li]
		li++
		sums[oi] = sum
		oi++
	}
	for ; oi < n; oi++ {
		sum -= in[li]
		li++
		sums[oi] = sum
	}
}

func boxSums4(in0, in1, in2, in3, sums0, sums1, sums2, sums3 []float32, full int) {
	n := len(in0)
	in1, in2, in3 = in1[:n], in2[:n], in3[:n]
	sums0, sums1, sums2, sums3 = sums0[:n], sums1[:n], sums2[:n], sums3[:n]
	half := (full + 2) / 2
	var s0, s1, s2, s3 float32
	ri, li, oi := 0, 0, 0
	for ; ri < half-1; ri++ {
		s0 += in0[ri]
		s1 += in1[ri]
		s2 += in2[ri]
		s3 += in3[ri]
	}
	for ; ri < full; ri++ {
		s0 += in0[ri]
		s1 += in1[ri]
		s2 += in2[ri]
		s3 += in3[ri]
		sums0[oi], sums1[oi], sums2[oi], sums3[oi] = s0, s1, s2, s3
		oi++
	}
	for ; ri < n; ri++ {
		s0 += in0[ri]
		s1 += in1[ri]
		s2 += in2[ri]
		s3 += in3[ri]
		s0 -= in0[li]
		s1 -= in1[li]
		s2 -= in2[li]
		s3 -= in3[li]
		li++
		sums0[oi], sums1[oi], sums2[oi], sums3[oi] = s0, s1, s2, s3
		oi++
	}
	for ; oi < n; oi++ {
		s0 -= in0[li]
		s1 -= in1[li]
		s2 -= in2[li]
		s3 -= in3[li]
		li++
		sums0[oi], sums1[oi], sums2[oi], sums3[oi] = s0, s1, s2, s3
	}
}

// exactRecip returns 1/n when n is a power of two, and 0 otherwise. Multiplying by the reciprocal
// of a power of two rounds to exactly what dividing by it does (both are the one correctly
// rounded value of the same real number), and is quicker.
func exactRecip(n int) float32 {
	if n > 0 && n&(n-1) == 0 {
		return 1 / float32(n)
	}
	return 0
}

// colBox is the reference's box filter along columns, run as rows arrive: one running sum per
// column, and the last full input rows kept in a ring to be subtracted when they leave the
// window. Each column sees exactly the operations of the reference's filter down that column.
type colBox struct {
	width   int
	full    int
	half    int
	ring    []float32 // full rows; input row t is in slot t%full
	sum     []float32
	in      int // rows pushed
	out     int // rows produced
	cnt     int // inputs in the window
	lastOut int // index of the row most recently produced
}

func (c *colBox) reset(width, full int) {
	c.width, c.full, c.half = width, full, (full+2)/2
	c.ring = grow(c.ring, full*width)
	c.sum = grow(c.sum, width)
	clear(c.sum)
	c.in, c.out, c.cnt, c.lastOut = 0, 0, 0, -1
}

// push adds input row in and, once the window has reached the rows an output needs, writes the
// next output row to dst and reports true.
func (c *colBox) push(in, dst []float32) bool {
	t := c.in
	c.in++
	width := c.width
	in = in[:width]
	sum := c.sum[:width]
	slot := c.ring[(t%c.full)*width : (t%c.full+1)*width]
	if t < c.full {
		for x, v := range in {
			sum[x] += v
		}
		copy(slot, in)
		c.cnt++
		if t < c.half-1 {
			return false
		}
		c.emit(dst)
		return true
	}
	dst = dst[:width]
	if r := exactRecip(c.full); r != 0 {
		for x, v := range in {
			s := sum[x] + v
			s -= slot[x]
			sum[x] = s
			slot[x] = v
			dst[x] = s * r
		}
	} else {
		fc := float32(c.full)
		for x, v := range in {
			s := sum[x] + v
			s -= slot[x]
			sum[x] = s
			slot[x] = v
			dst[x] = s / fc
		}
	}
	c.lastOut = c.out
	c.out++
	return true
}

// flush produces the next of the last half-1 output rows, which need no further input, into
// dst, and reports false when there are none left.
func (c *colBox) flush(dst []float32) bool {
	if c.out >= c.in {
		return false
	}
	// The row leaving the window: the first of the last full rows for the first of these
	// outputs, then each following row.
	li := c.out + c.half - 1 - c.full
	width := c.width
	sum := c.sum[:width]
	slot := c.ring[(li%c.full)*width : (li%c.full+1)*width]
	for x, v := range slot {
		sum[x] -= v
	}
	c.cnt--
	c.emit(dst)
	return true
}

// emit writes the running sums divided by the window count to dst as the next output row.
func (c *colBox) emit(dst []float32) {
	dst = dst[:c.width]
	cnt := float32(c.cnt)
	for x, s := range c.sum[:c.width] {
		dst[x] = s / cnt
	}
	c.lastOut = c.out
	c.out++
}
