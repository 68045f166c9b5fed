package node

import (
	"slices"
	"strings"

	"github.com/hashfed/hashfed/consortium"
)

// signHeadsNote signs this node's heads note (section 4.5 of PROTOCOL.md): the size and root of
// the latest verified checkpoint of every non-empty log the node holds. An audit bundle carries it
// so that a log removed from the bundle, or rolled back to an older checkpoint, fails the audit.
func (n *Node) signHeadsNote() ([]byte, error) {
	var heads []consortium.LogHead
	for m, cp := range n.store.Heads() {
		if cp != nil && cp.Size > 0 {
			heads = append(heads, consortium.LogHead{Member: m, Size: cp.Size, Root: cp.Root})
		}
	}
	slices.SortFunc(heads, func(a, b consortium.LogHead) int { return strings.Compare(a.Member, b.Member) })
	return consortium.SignHeads(n.g.ID, n.key, n.now(), heads)
}
