package corpus

import (
	"encoding/hex"
	"slices"
	"testing"
)

// The golden values below were produced by running the corpus, queries and flips functions of
// shared/anchors/faiss_pdq_bench.py (the definition) with /usr/bin/python3.

func TestHash(t *testing.T) {
	tests := []struct {
		seed, i int
		want    string
	}{
		{1, 0, "a6685f3b62d57bfc4935263140bae87fcd48088975c238c1c8455fa2c716659d"},
		{1, 999, "e0f936590e08e3ce0112aa1c44f6685ca5ef86a4fc8ba01693413a0574f887ca"},
	}
	for _, tc := range tests {
		h := Hash(tc.seed, tc.i)
		if got := hex.EncodeToString(h[:]); got != tc.want {
			t.Errorf("Hash(%d, %d) = %s, want %s", tc.seed, tc.i, got, tc.want)
		}
	}
}

func TestFill(t *testing.T) {
	dst := make([][32]byte, 5)
	Fill(3, 10, dst)
	for k, got := range dst {
		if want := Hash(3, 10+k); got != want {
			t.Errorf("Fill(3, 10)[%d] = %x, want %x", k, got, want)
		}
	}
}

func TestQuery(t *testing.T) {
	tests := []struct {
		seed, n, j, flip int
		planted          int
		want             string
	}{
		{1, 1000, 0, 16, 999, "e0f936594f08e7ce0912aa1c44f628dca6e782a4fc0ba01493413a0474f887e3"},
		{1, 1000, 1, 16, 814, "1794906817777c39ef64f2a8ba80a519879c1451eee7b1411c74007ca592135f"},
		{1, 1000, 2, 16, 110, "711006a89e4037bcfb1d221f64371474e1c4cfaeface2808dfe06cb7e67ea9af"},
		{7, 12345, 0, 1, 5014, "c4f5258b7d1a4794445289a04f5ff0d975b229b17be9b689106ee38e8eb32138"},
		{7, 12345, 1, 1, 193, "fd2b6acc44dd8673d1d21ae09e9725eaebdf880e40da8ebd750b546a1b3fdfb1"},
		{1, 1000000, 0, 0, 291999, "7be4911539880cd86b8c2af66090acdac5816c4dc7072be20af56009bf13a681"},
		{1, 1000000, 1, 0, 549814, "4c47a8968eb7a9b87e2103ee5ebd2ff431fdfa6e9f8635d5e8e18855c89d7c9a"},
		{3, 50, 0, 256, 15, "db2f4fe7a68555a680ce3f491a666302c92f5eb0da4a60d82ccc90ab5ff7aaa4"},
		// 40 flips need a second digest in the chain.
		{1, 2, 0, 40, 1, "97f5935c07817fca0a5f66b2433d97960ad55c7a576efda6125a5a7d299ebfd2"},
	}
	for _, tc := range tests {
		q, planted := Query(tc.seed, tc.n, tc.j, tc.flip)
		if planted != tc.planted {
			t.Errorf("Query(%d, %d, %d, %d) planted = %d, want %d", tc.seed, tc.n, tc.j, tc.flip, planted, tc.planted)
		}
		if got := hex.EncodeToString(q[:]); got != tc.want {
			t.Errorf("Query(%d, %d, %d, %d) = %s, want %s", tc.seed, tc.n, tc.j, tc.flip, got, tc.want)
		}
		if got, want := distance(q, Hash(tc.seed, planted)), min(tc.flip, MaxFlip); got != want {
			t.Errorf("Query(%d, %d, %d, %d): distance to planted = %d, want %d", tc.seed, tc.n, tc.j, tc.flip, got, want)
		}
	}
}

func TestFlips(t *testing.T) {
	tests := []struct {
		seed, j, flip int
		want          []int
	}{
		{1, 0, 16, []int{250, 68, 113, 53, 190, 140, 223, 120, 39, 149, 168, 134, 135, 255, 33, 252}},
		{2, 5, 40, []int{160, 153, 134, 252, 10, 72, 226, 210, 66, 204, 199, 242, 146, 79, 186, 130, 38, 241, 198, 183,
			219, 180, 36, 148, 14, 254, 231, 141, 35, 47, 207, 111, 155, 193, 78, 227, 225, 29, 235, 179}},
		{1, 0, 0, []int{}},
		{1, 0, -3, []int{}},
	}
	for _, tc := range tests {
		if got := Flips(tc.seed, tc.j, tc.flip); !slices.Equal(got, tc.want) {
			t.Errorf("Flips(%d, %d, %d) = %v, want %v", tc.seed, tc.j, tc.flip, got, tc.want)
		}
	}
	all := Flips(1, 0, 1000)
	slices.Sort(all)
	if len(all) != MaxFlip || all[0] != 0 || all[MaxFlip-1] != MaxFlip-1 {
		t.Errorf("Flips(1, 0, 1000): got %d positions, want all %d distinct", len(all), MaxFlip)
	}
}

func TestQueryEmptyCorpus(t *testing.T) {
	q, planted := Query(1, 0, 0, 16)
	if planted != -1 || q != ([32]byte{}) {
		t.Errorf("Query(1, 0, 0, 16) = %x, %d, want zero hash, -1", q, planted)
	}
}

func distance(a, b [32]byte) int {
	d := 0
	for i := range a {
		x := a[i] ^ b[i]
		for ; x != 0; x &= x - 1 {
			d++
		}
	}
	return d
}
