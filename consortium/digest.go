package consortium

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"strings"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// Digest returns the state digest: SHA-256 over a canonical encoding of the roster, every listing,
// every opinion, and the certifications, referrals and answers that count (docs/PROTOCOL.md,
// "State digest"). Equal logs give equal digests.
func (s *State) Digest() Hash {
	h := sha256.New()
	h.Write([]byte("hashfed state v1\n"))
	var buf []byte
	r := s.Roster()
	buf = append(buf, 'R')
	buf = binary.AppendUvarint(buf, r.Epoch)
	buf = binary.AppendUvarint(buf, uint64(r.Quorum))
	buf = binary.AppendUvarint(buf, uint64(len(r.Members)))
	for _, m := range r.Members {
		buf = appendStr(buf, m.ID)
		buf = append(buf, byte(m.Role))
		buf = append(buf, m.Key...)
	}
	h.Write(buf)

	type item struct {
		sig    Signal
		member string
		index  uint64
		stance pb.Stance
	}
	var items []item
	for id := range s.sigs {
		if s.sigs[id].visible == 0 {
			continue
		}
		s.eachListing(uint32(id), func(l listing) {
			if s.canAdd[l.member] {
				items = append(items, item{sig: s.sigs[id].sig, member: s.memberIDs[l.member], index: l.index})
			}
		})
	}
	cmp := func(a, b item) int {
		if c := strings.Compare(a.sig.Type.String(), b.sig.Type.String()); c != 0 {
			return c
		}
		if c := bytes.Compare(a.sig.Bytes(), b.sig.Bytes()); c != 0 {
			return c
		}
		return strings.Compare(a.member, b.member)
	}
	// write hashes the items in order, each as tag, signal type, signal bytes, member, the stance
	// (opinions only) and index.
	write := func(tag byte) {
		slices.SortFunc(items, cmp)
		for _, it := range items {
			buf = append(buf[:0], tag)
			buf = appendStr(buf, it.sig.Type.String())
			buf = appendStr(buf, string(it.sig.Bytes()))
			buf = appendStr(buf, it.member)
			if tag == 'O' {
				buf = append(buf, byte(it.stance))
			}
			buf = binary.AppendUvarint(buf, it.index)
			h.Write(buf)
		}
	}
	write('L')
	items = items[:0]
	for k, o := range s.opinions {
		if s.onRoster[k.author] {
			items = append(items, item{sig: k.sig, member: s.memberIDs[k.author], index: o.index, stance: o.stance})
		}
	}
	write('O')
	s.digestRoles(h)
	var out Hash
	h.Sum(out[:0])
	return out
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}
