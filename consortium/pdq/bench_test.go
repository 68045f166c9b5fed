package pdq

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// bench512 is the decoded 512×512 image the hashing benchmarks use: a JPEG, so *image.YCbCr,
// the type most uploads decode to.
const bench512 = "images/pdq/data/bridge-mods/square-512x512.jpg"

// benchJPEG is the 1600×1004 JPEG of BenchmarkHashJPEG.
const benchJPEG = "images/pdq/data/bridge-mods/aaa-orig.jpg"

func BenchmarkHash512(b *testing.B) {
	img := decodeFile(b, bench512)
	b.ReportAllocs()
	for b.Loop() {
		HashImage(img)
	}
}

func BenchmarkHash512RGBA(b *testing.B) {
	img := decodeFile(b, "images/synthetic/square-512x512.png")
	b.ReportAllocs()
	for b.Loop() {
		HashImage(img)
	}
}

func BenchmarkHashDihedral512(b *testing.B) {
	img := decodeFile(b, bench512)
	b.ReportAllocs()
	for b.Loop() {
		HashImageDihedral(img)
	}
}

func BenchmarkHashJPEG(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(testdataDir, benchJPEG))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		img, _, err := Decode(bytes.NewReader(data), DecodeOptions{})
		if err != nil {
			b.Fatal(err)
		}
		HashImage(img)
	}
}
