package main

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/hashfed/hashfed/consortium/pdq"
	"github.com/hashfed/hashfed/internal/jpegturbo"
)

// runHashDistances implements `hashfed-bench hash -distances DIR`: for the conformance set in DIR
// (its images/ and expected_*.csv, and the same under DIR/acceptance when present) it hashes
// every JPEG with Go's decoder and with libjpeg-turbo, full size and scaled in the DCT domain, and
// prints the Hamming distances to the expected values: to expected_cpp_core.csv (the C++ core
// on Go's pixels) and to every published value of expected_published.csv, and between the
// decodes. PNG rows of expected_cpp_core.csv are checked to be exact. It ends with one line per
// comparison giving the distribution (median, max and counts by range).
func runHashDistances(dir string, stdout io.Writer) error {
	if !jpegturbo.Available {
		return errors.New("bench hash -distances: this build has no libjpeg-turbo (built without cgo or with -tags nojpegturbo)")
	}
	sets := []string{dir}
	if st, err := os.Stat(filepath.Join(dir, "acceptance")); err == nil && st.IsDir() {
		sets = append(sets, filepath.Join(dir, "acceptance"))
	}
	dists := map[string][]int{}
	add := func(k string, d int) { dists[k] = append(dists[k], d) }
	var keys []string
	key := func(k string) string {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
		return k
	}
	fmt.Fprintf(stdout, "JPEG decoder: %s; distances in bits\n", jpegturbo.Version())
	fmt.Fprintf(stdout, "%-52s %9s %4s %9s %9s %9s %9s %9s\n", "file", "size", "q", "go-core", "turbo-core", "go-turbo", "1/2-full", "1/4-full")
	for _, set := range sets {
		core, err := readBenchCSV(filepath.Join(set, "expected_cpp_core.csv"))
		if err != nil {
			return err
		}
		if len(core) == 0 {
			return fmt.Errorf("bench hash -distances: no rows in %s", filepath.Join(set, "expected_cpp_core.csv"))
		}
		hashes := map[string][2]pdq.Hash{} // image path under images/ → Go's, turbo's hash
		for _, row := range core {
			file := row["file"]
			want, err := pdq.ParseHash(row["pdq_hex"])
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			data, err := os.ReadFile(filepath.Join(set, file))
			if err != nil {
				return err
			}
			ext := strings.ToLower(filepath.Ext(file))
			if ext != ".jpg" && ext != ".jpeg" {
				if strings.HasPrefix(row["pixel_decoding"], "16-bit gray clipped") {
					continue
				}
				img, _, err := pdq.Decode(bytes.NewReader(data), pdq.DecodeOptions{})
				if err != nil {
					return fmt.Errorf("%s: %w", file, err)
				}
				h, _ := pdq.HashImage(img)
				add(key("png and decoded-png: ours vs C++ core (must be 0)"), pdq.Distance(h, want))
				continue
			}
			goImg, _, err := pdq.Decode(bytes.NewReader(data), pdq.DecodeOptions{GoJPEG: true})
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			hg, _ := pdq.HashImage(goImg)
			full, err := jpegturbo.Decode(data, jpegturbo.Options{MaxPixels: pdq.DefaultMaxPixels})
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			ht, q := pdq.HashImage(jpegturbo.ToImage(full))
			hashes[strings.TrimPrefix(file, "images/")] = [2]pdq.Hash{hg, ht}
			dgc, dtc, dgt := pdq.Distance(hg, want), pdq.Distance(ht, want), pdq.Distance(hg, ht)
			add(key("JPEG, Go decoder vs C++ core on Go pixels (must be 0)"), dgc)
			add(key("JPEG, libjpeg-turbo vs C++ core on Go pixels"), dtc)
			add(key("JPEG, libjpeg-turbo vs Go decoder"), dgt)
			scaled := [2]string{"-", "-"}
			if min(full.Width, full.Height) >= 1000 {
				for i, denom := range []int{2, 4} {
					s, err := jpegturbo.Decode(data, jpegturbo.Options{MaxPixels: pdq.DefaultMaxPixels, ScaleDenom: denom})
					if err != nil {
						return fmt.Errorf("%s at 1/%d: %w", file, denom, err)
					}
					hs, _ := pdq.HashImage(jpegturbo.ToImage(s))
					d := pdq.Distance(hs, ht)
					scaled[i] = strconv.Itoa(d)
					add(key(fmt.Sprintf("JPEG ≥1000 px a side, DCT-scaled 1/%d vs full (libjpeg-turbo)", denom)), d)
					add(key(fmt.Sprintf("JPEG ≥1000 px a side, DCT-scaled 1/%d vs C++ core on Go pixels", denom)), pdq.Distance(hs, want))
				}
			}
			fmt.Fprintf(stdout, "%-52s %9s %4d %9d %9d %9d %9s %9s\n", shortPath(file), row["width"]+"x"+row["height"], q, dgc, dtc, dgt, scaled[0], scaled[1])
		}
		pub, err := readBenchCSV(filepath.Join(set, "expected_published.csv"))
		if err != nil {
			return err
		}
		for _, row := range pub {
			h, ok := hashes[row["image_path"]]
			if !ok {
				continue
			}
			want, err := pdq.ParseHash(row["expected_hash_hex"])
			if err != nil {
				return err
			}
			impl := row["implementation_and_decoder"]
			fmt.Fprintf(stdout, "  published %-45s go %2d turbo %2d  %s\n", shortPath(row["image_path"]), pdq.Distance(h[0], want), pdq.Distance(h[1], want), impl)
			class := publishedClass(impl)
			add(key("published "+class+": Go decoder"), pdq.Distance(h[0], want))
			add(key("published "+class+": libjpeg-turbo"), pdq.Distance(h[1], want))
		}
	}
	fmt.Fprintf(stdout, "\n%-72s %3s %6s %4s  %s\n", "comparison", "n", "median", "max", "exact / 1-2 / 3-4 / 5-8 / 9-16 / >16 bits")
	for _, k := range keys {
		d := slices.Clone(dists[k])
		slices.Sort(d)
		var c [6]int
		for _, v := range d {
			switch {
			case v == 0:
				c[0]++
			case v <= 2:
				c[1]++
			case v <= 4:
				c[2]++
			case v <= 8:
				c[3]++
			case v <= 16:
				c[4]++
			default:
				c[5]++
			}
		}
		fmt.Fprintf(stdout, "%-72s %3d %6s %4d  %d / %d / %d / %d / %d / %d\n", k, len(d), medianInt(d), d[len(d)-1], c[0], c[1], c[2], c[3], c[4], c[5])
	}
	return nil
}

func medianInt(sorted []int) string {
	n := len(sorted)
	if n%2 == 1 {
		return strconv.Itoa(sorted[n/2])
	}
	return strconv.FormatFloat(float64(sorted[n/2-1]+sorted[n/2])/2, 'f', -1, 64)
}

// publishedClass groups the published rows by the decoder that made them.
func publishedClass(impl string) string {
	switch {
	case strings.HasPrefix(impl, "pytx"):
		return "pytx (C++ core + Pillow decode)"
	case strings.Contains(impl, "pure-python"):
		return "pure-python pdqhashing (Pillow decode)"
	case strings.Contains(impl, "CImg") || strings.Contains(impl, "wasm"):
		return "C++/wasm CLI (CImg decode, 512x512 resize)"
	case strings.Contains(impl, "java"):
		return "Java (ImageIO decode)"
	case strings.Contains(impl, "php"):
		return "PHP"
	}
	return "other"
}

func shortPath(p string) string {
	p = strings.TrimPrefix(p, "images/")
	return strings.TrimPrefix(p, "pdq/data/")
}

func readBenchCSV(path string) ([]map[string]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil || len(recs) == 0 {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	var rows []map[string]string
	for _, rec := range recs[1:] {
		row := map[string]string{}
		for i, h := range recs[0] {
			row[h] = rec[i]
		}
		rows = append(rows, row)
	}
	return rows, nil
}
