package jpegturbo

import (
	"bytes"
	"image/jpeg"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashfed/hashfed/consortium/pdq"
)

// benchFiles are the conformance set's 1600×1004 and 1004×1600 JPEGs, the files of
// `hashfed-bench hash`.
func benchFiles(b testing.TB) [][]byte {
	names, _ := filepath.Glob("../../testdata/pdq/images/pdq/data/bridge-mods/*.jpg")
	d, _ := filepath.Glob("../../testdata/pdq/images/pdq/data/reg-test-input/dih/*.jpg")
	var out [][]byte
	for _, n := range append(names, d...) {
		data, err := os.ReadFile(n)
		if err != nil {
			b.Fatal(err)
		}
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(data))
		if err != nil || cfg.Width*cfg.Height != 1600*1004 {
			continue
		}
		out = append(out, data)
	}
	return out
}

// BenchmarkDecodeHash decodes (with libjpeg-turbo where linked in) and hashes each file in turn.
func BenchmarkDecodeHash(b *testing.B) {
	files := benchFiles(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		img, _, err := pdq.Decode(bytes.NewReader(files[i%len(files)]), pdq.DecodeOptions{})
		if err != nil {
			b.Fatal(err)
		}
		pdq.HashImage(img)
	}
}

// BenchmarkDecodeOnly decodes each file in turn with libjpeg-turbo.
func BenchmarkDecodeOnly(b *testing.B) {
	files := benchFiles(b)
	needTurbo(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Decode(files[i%len(files)], Options{MaxPixels: 1 << 30}); err != nil {
			b.Fatal(err)
		}
	}
}
