package store

import (
	"bytes"
	"fmt"
	"time"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// HistoryItem is one entry of a member log about a signal, with its signature status on this node.
type HistoryItem struct {
	Member string
	Index  uint64
	Time   time.Time
	// Op is "add", "revoke" or "opinion"; Detail says what it did (labels, reason, stance and text).
	Op     string
	Detail string
	// Checkpoint is the size of the latest signed checkpoint of the log held here, 0 when none
	// covers the entry yet; Cosigners the members that cosigned it.
	Checkpoint uint64
	Cosigners  []string
	// Proof is "verified" when the entry's inclusion proof checks against that checkpoint's root,
	// "" when no checkpoint covers it, and the error otherwise.
	Proof string
}

// historyScanLimit bounds the entries read per log for one history.
const historyScanLimit = 2_000_000

// History returns every entry of every stored log about sig (its adds, the revokes of those adds
// and the opinions on it), oldest first per log, each with its checkpoint and inclusion proof
// status. It reads every log (up to 2,000,000 entries each), so it is for people, not for
// matching.
func (s *Store) History(sig consortium.Signal) ([]HistoryItem, error) {
	var out []HistoryItem
	value := sig.Bytes()
	for _, m := range s.Members() {
		size := min(s.Size(m), historyScanLimit)
		head, _ := s.Head(m)
		adds := map[uint64]bool{}
		for start := uint64(0); start < size; {
			es, err := s.Entries(m, start, min(size, start+4096), 8<<20)
			if err != nil {
				return nil, err
			}
			for i, raw := range es {
				idx := start + uint64(i)
				if !bytes.Contains(raw, value) && len(adds) == 0 {
					continue
				}
				e, err := consortium.ParseEntry(raw)
				if err != nil {
					continue
				}
				it, ok := historyItem(e, sig, adds)
				if !ok {
					continue
				}
				if it.Op == "add" {
					adds[idx] = true
				}
				it.Member, it.Index, it.Time = m, idx, time.UnixMilli(e.TimeUnixMs).UTC()
				if head != nil && idx < head.Size {
					it.Checkpoint = head.Size
					for _, c := range head.Cosigners {
						it.Cosigners = append(it.Cosigners, c.Member)
					}
					it.Proof = "verified"
					proof, err := s.ProveInclusion(m, idx, head.Size)
					if err == nil {
						err = consortium.VerifyInclusion(proof, idx, head.Size, head.Root, consortium.LeafHash(raw))
					}
					if err != nil {
						it.Proof = err.Error()
					}
				}
				out = append(out, it)
			}
			start += uint64(len(es))
			if len(es) == 0 {
				break
			}
		}
	}
	return out, nil
}

// historyItem describes e when it concerns sig (adds lists the indices of the log's adds of sig,
// which a revoke may name).
func historyItem(e *pb.Entry, sig consortium.Signal, adds map[uint64]bool) (HistoryItem, bool) {
	same := func(p *pb.Signal) bool {
		got, err := consortium.SignalFromProto(p)
		return err == nil && got == sig
	}
	switch op := e.Op.(type) {
	case *pb.Entry_Add:
		if same(op.Add.GetSignal()) {
			d := fmt.Sprintf("labels %v", op.Add.GetLabels())
			if op.Add.GetNote() != "" {
				d += "; note: " + op.Add.GetNote()
			}
			return HistoryItem{Op: "add", Detail: d}, true
		}
	case *pb.Entry_Revoke:
		r := op.Revoke
		if (r.GetSignal() != nil && same(r.GetSignal())) || (r.GetSignal() == nil && adds[r.GetIndex()]) {
			d := "reason " + consortium.ReasonName(r.GetReason())
			if r.GetText() != "" {
				d += ": " + r.GetText()
			}
			return HistoryItem{Op: "revoke", Detail: d}, true
		}
	case *pb.Entry_Opinion:
		if same(op.Opinion.GetSignal()) {
			d := consortium.StanceName(op.Opinion.GetStance())
			if op.Opinion.GetText() != "" {
				d += ": " + op.Opinion.GetText()
			}
			return HistoryItem{Op: "opinion", Detail: d}, true
		}
	}
	return HistoryItem{}, false
}

// Disputed returns up to limit signals with a current false_positive opinion by a roster member,
// with what the consortium says of them (as [Store.Lookup]), ordered by signal.
func (s *Store) Disputed(limit int) ([]Match, error) {
	var sigs []consortium.Signal
	seen := map[consortium.Signal]bool{}
	s.View(func(st *consortium.State) {
		st.ForEachOpinion(func(sig consortium.Signal, o consortium.OpinionRecord) bool {
			if o.Stance == pb.Stance_STANCE_FALSE_POSITIVE && !seen[sig] {
				seen[sig] = true
				sigs = append(sigs, sig)
			}
			return true
		})
	})
	sortSignals(sigs)
	var out []Match
	for _, sig := range sigs {
		if len(out) >= limit {
			break
		}
		m, ok, err := s.Lookup(sig)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, m)
		}
	}
	return out, nil
}
