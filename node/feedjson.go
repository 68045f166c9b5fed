package node

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// FeedRecordJSON is one feed event in hashfed's JSON: the record of GET /v1/feed and of
// `hashfed feed --json`, one per line. docs/API.md ("GET /v1/feed") describes every field.
type FeedRecordJSON struct {
	// Cursor resumes the feed after this record.
	Cursor string `json:"cursor"`
	// Seq is the record's feed position (the gRPC Feed's seq).
	Seq    uint64 `json:"seq"`
	Member string `json:"member"`
	Index  uint64 `json:"index"`
	// Op is add, revoke, opinion, propose, endorse, or unreadable for an entry that does not
	// decode (Rejected says why).
	Op   string `json:"op"`
	Time string `json:"time,omitempty"`
	// Signal is what an add, an opinion or a revoke is about (for a revoke by index, the signal of
	// the add it names, when that is known).
	Signal *SignalJSON `json:"signal,omitempty"`
	// Add.
	Labels    []string `json:"labels,omitzero"`
	ContentID string   `json:"content_id,omitempty"`
	Note      string   `json:"note,omitempty"`
	Expires   string   `json:"expires,omitempty"`
	Quality   *uint32  `json:"quality,omitempty"`
	// Revoke.
	Reason       string  `json:"reason,omitempty"`
	RevokesIndex *uint64 `json:"revokes_index,omitempty"`
	// Opinion.
	Stance string `json:"stance,omitempty"`
	// Text of a revoke, an opinion or a proposal.
	Text string `json:"text,omitempty"`
	// Propose and endorse.
	Epoch    *uint64 `json:"epoch,omitempty"`
	Changes  string  `json:"changes,omitempty"`
	Proposal string  `json:"proposal,omitempty"`
	// ListedBy are the members listing Signal when the record was read (never null when Signal
	// is set).
	ListedBy []string `json:"listed_by,omitzero"`
	Rejected string   `json:"rejected,omitempty"`
	// Cutoff marks an event that is not a newly stored entry: an equivocation cutoff changed this
	// entry's effect (unlisted, listed, opinion_removed, opinion_applied).
	Cutoff string `json:"cutoff,omitempty"`
	// Certify, uncertify, refer and answer (PROTOCOL.md sections 14 and 15): the signals a
	// certification or a referral names; a certification's category and subject (its reason is
	// Reason, its expiry Expires); the leaf hash (hex) of the certification a certify is or an
	// uncertify withdraws, and of the referral a refer is or an answer names; a referral's legal
	// basis, order reference, deadline, addressees (empty: every member) and note (Note); an
	// answer's outcome (listed or declined, its reason is Reason).
	Signals       []SignalJSON `json:"signals,omitzero"`
	Category      string       `json:"category,omitempty"`
	Subject       string       `json:"subject,omitempty"`
	Certification string       `json:"certification,omitempty"`
	Referral      string       `json:"referral,omitempty"`
	LegalBasis    string       `json:"legal_basis,omitempty"`
	OrderRef      string       `json:"order_ref,omitempty"`
	Deadline      string       `json:"deadline,omitempty"`
	To            []string     `json:"to,omitzero"`
	Outcome       string       `json:"outcome,omitempty"`
	// Protected are the certifications in force that protect an add's signal: a takedown pipeline
	// routes such a signal to human review instead of automated removal.
	Protected []ProtectionJSON `json:"protected,omitzero"`
}

// errBadCursor is wrapped by the errors of a feed cursor this node cannot resume from.
var errBadCursor = fmt.Errorf("%w: bad cursor", errBadRequest)

// FormatCursor returns the feed cursor that resumes member's node's feed at position pos:
// "<member>.<pos>". The member id names the node whose feed positions it counts, so that a cursor
// taken to another node is refused instead of silently skipping or repeating records.
func FormatCursor(member string, pos uint64) string {
	return member + "." + strconv.FormatUint(pos, 10)
}

// ParseCursor parses a feed cursor given back to member's node: "" (the beginning), a cursor of
// [FormatCursor] of this member, or a bare feed position (the gRPC Feed's cursor). It does not
// check that the position exists: see [Node.checkCursor].
func ParseCursor(s, member string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	pos := s
	if who, p, ok := strings.Cut(s, "."); ok {
		if who != member {
			return 0, fmt.Errorf("%w %q: it was given by node %q, and this is node %q; feed positions differ between nodes, so start again from an empty cursor", errBadCursor, clip(s), clip(who), member)
		}
		pos = p
	}
	v, err := strconv.ParseUint(pos, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w %q: want the cursor of a feed record (%s), a feed position, or empty for the beginning", errBadCursor, clip(s), FormatCursor(member, 12))
	}
	return v, nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// checkCursor refuses a feed position past the end of this node's feed.
func (n *Node) checkCursor(pos uint64) error {
	if end := n.store.FeedEnd(); pos > end {
		return fmt.Errorf("%w %s: past the end of this node's feed (%d records); a cursor is only valid on the node that gave it, and a node restored from a backup forgets what it stored after", errBadCursor, FormatCursor(n.id, pos), end)
	}
	return nil
}

// cutoffNames are the JSON names of the cutoff effects.
var cutoffNames = map[pb.CutoffEffect]string{
	pb.CutoffEffect_CUTOFF_EFFECT_UNLISTED:        "unlisted",
	pb.CutoffEffect_CUTOFF_EFFECT_LISTED:          "listed",
	pb.CutoffEffect_CUTOFF_EFFECT_OPINION_REMOVED: "opinion_removed",
	pb.CutoffEffect_CUTOFF_EFFECT_OPINION_APPLIED: "opinion_applied",
}

// NewFeedRecordJSON returns the JSON form of a feed event of node's feed (node: the member id
// that names the node in cursors).
func NewFeedRecordJSON(node string, ev *pb.FeedEvent) FeedRecordJSON {
	r := FeedRecordJSON{
		Cursor:   FormatCursor(node, ev.Seq+1),
		Seq:      ev.Seq,
		Member:   ev.Member,
		Index:    ev.Index,
		Rejected: ev.Rejected,
		Cutoff:   cutoffNames[ev.Cutoff],
		ListedBy: ev.ListedBy,
	}
	e := ev.Entry
	if e == nil {
		r.Op = "unreadable"
		return r
	}
	r.Time = rfc3339(time.UnixMilli(e.TimeUnixMs))
	sig := func(p *pb.Signal) {
		if s, err := consortium.SignalFromProto(p); err == nil {
			r.Signal = &SignalJSON{Type: s.Type.String(), Value: s.Text()}
		}
	}
	switch op := e.Op.(type) {
	case *pb.Entry_Add:
		a := op.Add
		r.Op = "add"
		sig(a.Signal)
		r.Labels, r.ContentID, r.Note, r.Quality = a.Labels, a.ContentId, a.Note, a.Quality
		if r.Labels == nil {
			r.Labels = []string{}
		}
		if a.ExpiresUnixMs != 0 {
			r.Expires = rfc3339(time.UnixMilli(a.ExpiresUnixMs))
		}
	case *pb.Entry_Revoke:
		v := op.Revoke
		r.Op = "revoke"
		r.Reason, r.Text = consortium.ReasonName(v.Reason), v.Text
		switch t := v.Target.(type) {
		case *pb.Revoke_Signal:
			sig(t.Signal)
		case *pb.Revoke_Index:
			idx := t.Index
			r.RevokesIndex = &idx
		}
	case *pb.Entry_Opinion:
		o := op.Opinion
		r.Op = "opinion"
		sig(o.Signal)
		r.Stance, r.Text = consortium.StanceName(o.Stance), o.Text
	case *pb.Entry_Propose:
		p := op.Propose
		r.Op = "propose"
		epoch := p.Epoch
		r.Epoch, r.Changes, r.Text = &epoch, consortium.DescribeChanges(p.Changes), p.Text
		r.Proposal = leafHex(e)
	case *pb.Entry_Endorse:
		en := op.Endorse
		r.Op = "endorse"
		epoch := en.Epoch
		r.Epoch, r.Proposal = &epoch, hex.EncodeToString(en.Proposal)
	case *pb.Entry_Certify:
		c := op.Certify
		r.Op = "certify"
		r.Signals, r.Category, r.Reason, r.Subject = signalsJSON(c.Signals), consortium.CategoryName(c.Category), c.Reason, c.Subject
		if c.ExpiresUnixMs != 0 {
			r.Expires = rfc3339(time.UnixMilli(c.ExpiresUnixMs))
		}
		r.Certification = leafHex(e)
	case *pb.Entry_Uncertify:
		r.Op = "uncertify"
		r.Certification, r.Reason = hex.EncodeToString(op.Uncertify.Certification), op.Uncertify.Reason
	case *pb.Entry_Refer:
		f := op.Refer
		r.Op = "refer"
		r.Signals, r.LegalBasis, r.OrderRef, r.To, r.Note = signalsJSON(f.Signals), f.LegalBasis, f.OrderRef, f.To, f.Note
		if f.DeadlineUnixMs != 0 {
			r.Deadline = rfc3339(time.UnixMilli(f.DeadlineUnixMs))
		}
		r.Referral = leafHex(e)
	case *pb.Entry_Answer:
		a := op.Answer
		r.Op = "answer"
		r.Referral, r.Outcome, r.Reason = hex.EncodeToString(a.Referral), consortium.OutcomeName(a.Outcome), a.Reason
	default:
		r.Op = "unreadable"
	}
	r.Protected = newProtectionsJSON(ev.Protected)
	if r.Signal == nil && ev.Signal != nil {
		sig(ev.Signal)
	}
	if r.Signal != nil && r.ListedBy == nil {
		r.ListedBy = []string{}
	}
	return r
}

// leafHex returns the hex leaf hash of an entry (what names a proposal, a certification or a
// referral). Entries are canonical (PROTOCOL.md): encoding the decoded entry again gives its bytes.
func leafHex(e *pb.Entry) string {
	raw, err := consortium.MarshalEntry(e)
	if err != nil {
		return ""
	}
	h := consortium.LeafHash(raw)
	return hex.EncodeToString(h[:])
}

// signalsJSON returns the JSON form of a certification's or a referral's signals (those that
// decode; the entry was verified when stored).
func signalsJSON(ps []*pb.Signal) []SignalJSON {
	var out []SignalJSON
	for _, p := range ps {
		if s, err := consortium.SignalFromProto(p); err == nil {
			out = append(out, SignalJSON{Type: s.Type.String(), Value: s.Text()})
		}
	}
	return out
}

// AppendJSON appends the record's JSON, the bytes encoding/json writes for it (without a
// newline), written by hand because the feed sends millions of records.
func (r *FeedRecordJSON) AppendJSON(b []byte) []byte {
	b = append(b, `{"cursor":`...)
	b = appendJSONString(b, r.Cursor)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, `,"member":`...)
	b = appendJSONString(b, r.Member)
	b = append(b, `,"index":`...)
	b = strconv.AppendUint(b, r.Index, 10)
	b = append(b, `,"op":`...)
	b = appendJSONString(b, r.Op)
	str := func(name, v string) {
		if v != "" {
			b = append(b, `,"`...)
			b = append(b, name...)
			b = append(b, `":`...)
			b = appendJSONString(b, v)
		}
	}
	list := func(name string, vs []string) {
		if vs == nil {
			return
		}
		b = append(b, `,"`...)
		b = append(b, name...)
		b = append(b, `":[`...)
		for i, v := range vs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, v)
		}
		b = append(b, ']')
	}
	num := func(name string, v *uint64) {
		if v != nil {
			b = append(b, `,"`...)
			b = append(b, name...)
			b = append(b, `":`...)
			b = strconv.AppendUint(b, *v, 10)
		}
	}
	str("time", r.Time)
	if r.Signal != nil {
		b = append(b, `,"signal":{"type":`...)
		b = appendJSONString(b, r.Signal.Type)
		b = append(b, `,"value":`...)
		b = appendJSONString(b, r.Signal.Value)
		b = append(b, '}')
	}
	list("labels", r.Labels)
	str("content_id", r.ContentID)
	str("note", r.Note)
	str("expires", r.Expires)
	if r.Quality != nil {
		b = append(b, `,"quality":`...)
		b = strconv.AppendUint(b, uint64(*r.Quality), 10)
	}
	str("reason", r.Reason)
	num("revokes_index", r.RevokesIndex)
	str("stance", r.Stance)
	str("text", r.Text)
	num("epoch", r.Epoch)
	str("changes", r.Changes)
	str("proposal", r.Proposal)
	list("listed_by", r.ListedBy)
	str("rejected", r.Rejected)
	str("cutoff", r.Cutoff)
	if r.Signals != nil {
		b = append(b, `,"signals":[`...)
		for i, sg := range r.Signals {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"type":`...)
			b = appendJSONString(b, sg.Type)
			b = append(b, `,"value":`...)
			b = appendJSONString(b, sg.Value)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	str("category", r.Category)
	str("subject", r.Subject)
	str("certification", r.Certification)
	str("referral", r.Referral)
	str("legal_basis", r.LegalBasis)
	str("order_ref", r.OrderRef)
	str("deadline", r.Deadline)
	list("to", r.To)
	str("outcome", r.Outcome)
	if r.Protected != nil {
		b = append(b, `,"protected":[`...)
		for i := range r.Protected {
			if i > 0 {
				b = append(b, ',')
			}
			b = r.Protected[i].AppendJSON(b)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// AppendJSON appends the protection's JSON, the bytes encoding/json writes for it, as
// [FeedRecordJSON.AppendJSON] does for the record that carries it.
func (p *ProtectionJSON) AppendJSON(b []byte) []byte {
	b = append(b, `{"certification":`...)
	b = appendJSONString(b, p.Certification)
	b = append(b, `,"author":`...)
	b = appendJSONString(b, p.Author)
	b = append(b, `,"index":`...)
	b = strconv.AppendUint(b, p.Index, 10)
	b = append(b, `,"time":`...)
	b = appendJSONString(b, p.Time)
	b = append(b, `,"category":`...)
	b = appendJSONString(b, p.Category)
	b = append(b, `,"reason":`...)
	b = appendJSONString(b, p.Reason)
	if p.Subject != "" {
		b = append(b, `,"subject":`...)
		b = appendJSONString(b, p.Subject)
	}
	if p.Expires != "" {
		b = append(b, `,"expires":`...)
		b = appendJSONString(b, p.Expires)
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string, as encoding/json writes it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
