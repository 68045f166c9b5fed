package store

import (
	"bytes"
	"testing"
	"time"
)

// FuzzDecodePeer: a stored peer record decodes only if it re-encodes to the same bytes.
func FuzzDecodePeer(f *testing.F) {
	f.Add(encodePeer(PeerRecord{GossipAddr: "127.0.0.1:7946", PeerAddr: "10.0.0.1:7400", Updated: time.UnixMilli(1)}))
	f.Add(encodePeer(PeerRecord{}))
	f.Add([]byte{1, 200, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodePeer(b)
		if err != nil {
			return
		}
		if again := encodePeer(r); !bytes.Equal(again, b) {
			t.Fatalf("decoded %+v re-encodes to %x, not %x", r, again, b)
		}
	})
}
