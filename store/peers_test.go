package store_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashfed/hashfed/internal/fixture"
	"github.com/hashfed/hashfed/store"
)

func TestPeersRemembered(t *testing.T) {
	g := fixture.Genesis(2, founders...)
	path := filepath.Join(t.TempDir(), "hashfed.db")
	s, err := store.Open(path, g, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1_700_000_000_123)
	good := []store.PeerRecord{
		{Member: "bravo", GossipAddr: "127.0.0.1:7946", PeerAddr: "127.0.0.1:7400", Updated: at},
		{Member: "charlie", GossipAddr: "[::1]:7946", Updated: at},
	}
	for _, r := range good {
		if err := s.SavePeer(r); err != nil {
			t.Fatalf("save %s: %v", r.Member, err)
		}
	}
	bad := []struct {
		name string
		r    store.PeerRecord
	}{
		{"never on the roster", store.PeerRecord{Member: "zed", GossipAddr: "127.0.0.1:1"}},
		{"not host:port", store.PeerRecord{Member: "bravo", GossipAddr: "127.0.0.1"}},
		{"no host", store.PeerRecord{Member: "bravo", PeerAddr: ":7400"}},
		{"too long", store.PeerRecord{Member: "bravo", PeerAddr: string(make([]byte, 400)) + ":1"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.SavePeer(tc.r); !errors.Is(err, store.ErrBadPeerRecord) {
				t.Errorf("got %v, want ErrBadPeerRecord", err)
			}
		})
	}
	s.Close()
	s = openStore(t, path, g, testOptions())
	got, err := s.Peers()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(good) {
		t.Fatalf("got %d records after reopening, want %d", len(got), len(good))
	}
	for i, r := range got {
		if r.Member != good[i].Member || r.GossipAddr != good[i].GossipAddr || r.PeerAddr != good[i].PeerAddr || !r.Updated.Equal(good[i].Updated) {
			t.Errorf("record %d: got %+v, want %+v", i, r, good[i])
		}
	}
	// A newer record replaces the older one.
	if err := s.SavePeer(store.PeerRecord{Member: "bravo", GossipAddr: "127.0.0.1:9000", Updated: at}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Peers(); len(got) != 2 || got[0].GossipAddr != "127.0.0.1:9000" || got[0].PeerAddr != "" {
		t.Errorf("after replacing bravo's record: got %+v", got)
	}
}
