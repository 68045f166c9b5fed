package node

// Local banks over HTTP (store/localbank.go holds them): lists a member receives under other
// programmes' terms, matched by this node only, never in its log, never gossiped.
//
//	GET    /v1/banks                 {"banks":[{"name":"ncmec","size":1234,"local":true}]}
//	POST   /v1/banks/<name>?format=te|csv|pytx-csv|jsonl|ncmec|stopncii[&replace=true|&delete=true]
//	                                 body: the list; {"added":..,"updated":..,"deleted":..,"size":..,
//	                                 "skipped":..,"refused":[{"line":3,"error":"..."}]}
//	GET    /v1/banks/<name>[?format=te|csv|pytx-csv|jsonl]   the bank as a list file
//	DELETE /v1/banks/<name>          {"deleted":"<name>"}
//
// A POST applies the list's additions and deletions in order, in one transaction; with
// replace=true the bank becomes exactly the list's additions; with delete=true (te, csv, pytx-csv
// and jsonl, which have no deletion of their own) the list's signals are deleted from an existing
// bank instead. Lines that are not signals hashfed
// knows are refused with their line and the rest applied.

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/consortium/hashlist"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
)

// maxBankUpload bounds a list posted to a local bank.
const maxBankUpload = 1 << 30

// LocalMatchJSON is a match in a local bank: marked "local":true, with the bank's name and what
// the list said about the signal.
type LocalMatchJSON struct {
	Local     bool       `json:"local"`
	Bank      string     `json:"bank"`
	Signal    SignalJSON `json:"signal"`
	Distance  int        `json:"distance"`
	Labels    []string   `json:"labels"`
	ContentID string     `json:"content_id,omitempty"`
	Note      string     `json:"note,omitempty"`
	Added     string     `json:"added"`
}

func newLocalMatchJSON(m store.LocalMatch) LocalMatchJSON {
	return NewLocalMatchJSON(localMatchToProto(m))
}

// NewLocalMatchJSON returns the JSON form of a local bank's match in its wire form.
func NewLocalMatchJSON(m *pb.LocalMatch) LocalMatchJSON {
	j := LocalMatchJSON{Local: true, Bank: m.GetBank(), Distance: int(m.GetDistance()), Labels: m.GetLabels(), ContentID: m.GetContentId(),
		Note: m.GetNote(), Added: rfc3339(time.UnixMilli(m.GetAddedUnixMs()))}
	if sig, err := consortium.SignalFromProto(m.GetSignal()); err == nil {
		j.Signal = SignalJSON{Type: sig.Type.String(), Value: sig.Text()}
	}
	if j.Labels == nil {
		j.Labels = []string{}
	}
	return j
}

// localMatchToProto returns the wire form of a local bank's match.
func localMatchToProto(m store.LocalMatch) *pb.LocalMatch {
	return &pb.LocalMatch{Bank: m.Bank, Signal: m.Entry.Signal.Proto(), Distance: uint32(m.Distance), Labels: m.Entry.Labels,
		ContentId: m.Entry.ContentID, Note: m.Entry.Note, AddedUnixMs: m.Entry.AddedUnixMs}
}

// localMatches answers a query against the local banks in JSON (never nil).
func (n *Node) localMatches(sig consortium.Signal, radius int) ([]LocalMatchJSON, error) {
	ms, err := n.store.LocalMatch(sig, radius)
	if err != nil {
		return nil, err
	}
	out := make([]LocalMatchJSON, len(ms))
	for i, m := range ms {
		out[i] = newLocalMatchJSON(m)
	}
	return out, nil
}

func (n *Node) registerBanks(mux *http.ServeMux) {
	mux.Handle("/v1/banks", n.route(true, []string{http.MethodGet}, n.handleBankList))
	mux.Handle("/v1/banks/", n.routeLimit(true, []string{http.MethodGet, http.MethodPost, http.MethodDelete}, maxBankUpload, n.handleBank))
}

func (n *Node) handleBankList(w http.ResponseWriter, r *http.Request) {
	banks, err := n.store.LocalBanks()
	if err != nil {
		writeErr(w, err)
		return
	}
	type bank struct {
		Name  string `json:"name"`
		Size  int    `json:"size"`
		Local bool   `json:"local"`
	}
	out := []bank{}
	for _, b := range banks {
		out = append(out, bank{b.Name, b.Size, true})
	}
	writeJSON(w, http.StatusOK, map[string]any{"banks": out})
}

// bankErr writes a local bank error with its status.
func bankErr(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, store.ErrUnknownBank):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, store.ErrBankName), errors.Is(err, hashlist.ErrFormat), errors.Is(err, hashlist.ErrUnknownFormat):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("list over %d bytes", maxBankUpload))
			return
		}
		writeErr(w, err)
	}
}

func (n *Node) handleBank(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/v1/banks/")
	if err := store.CheckBankName(name); err != nil {
		bankErr(w, err)
		return
	}
	switch r.Method {
	case http.MethodDelete:
		if err := n.store.LocalDrop(name); err != nil {
			bankErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"deleted": name})
	case http.MethodGet:
		n.exportBank(w, r, name)
	default:
		n.importBank(w, r, name)
	}
}

func (n *Node) exportBank(w http.ResponseWriter, r *http.Request, name string) {
	if err := onlyParams(r, "format"); err != nil {
		writeErr(w, err)
		return
	}
	f := hashlist.TE
	if s := r.URL.Query().Get("format"); s != "" {
		var err error
		if f, err = hashlist.ParseFormat(s); err != nil {
			bankErr(w, err)
			return
		}
	}
	es, err := n.store.LocalEntries(name)
	if err != nil {
		bankErr(w, err)
		return
	}
	ct := map[hashlist.Format]string{hashlist.TE: "text/plain; charset=utf-8", hashlist.CSV: "text/csv", hashlist.PytxCSV: "text/csv", hashlist.JSONL: "application/x-ndjson"}[f]
	w.Header().Set("Content-Type", ct)
	hw, _ := hashlist.NewWriter(w, f)
	for _, e := range es {
		rec := hashlist.Record{Type: e.Signal.Type.String(), Value: e.Signal.Text(), Labels: e.Labels, ContentID: e.ContentID, Note: e.Note}
		if err := hw.Write(rec); err != nil {
			// The format cannot hold this entry's labels: write it without them.
			rec.Labels, rec.Note, rec.ContentID = nil, "", ""
			hw.Write(rec)
		}
	}
	hw.Flush()
}

// bankRefusal is one line of a list that was not applied.
type bankRefusal struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

func (n *Node) importBank(w http.ResponseWriter, r *http.Request, name string) {
	if err := onlyParams(r, "format", "replace", "delete"); err != nil {
		writeErr(w, err)
		return
	}
	q := r.URL.Query()
	f := hashlist.Format(q.Get("format"))
	switch f {
	case hashlist.NCMEC, hashlist.StopNCII:
	case "":
		bankErr(w, fmt.Errorf("%w: format missing (te, csv, pytx-csv, jsonl, ncmec or stopncii)", hashlist.ErrUnknownFormat))
		return
	default:
		if _, err := hashlist.ParseFormat(string(f)); err != nil {
			bankErr(w, fmt.Errorf("%w (or ncmec, stopncii)", err))
			return
		}
	}
	var replace, deleteList bool
	for _, p := range []struct {
		name string
		dst  *bool
	}{{"replace", &replace}, {"delete", &deleteList}} {
		if s := q.Get(p.name); s != "" {
			var err error
			if *p.dst, err = strconv.ParseBool(s); err != nil {
				writeErr(w, fmt.Errorf("%w: %s %q is not true or false", errBadRequest, p.name, s))
				return
			}
		}
	}
	if deleteList {
		switch {
		case replace:
			writeErr(w, fmt.Errorf("%w: delete and replace together: delete removes the list's signals, replace keeps only them", errBadRequest))
			return
		case f == hashlist.NCMEC || f == hashlist.StopNCII:
			writeErr(w, fmt.Errorf("%w: delete=true with format %s: %s lists carry their own deletions", errBadRequest, f, f))
			return
		}
		if err := n.bankExists(name); err != nil {
			bankErr(w, err)
			return
		}
	}
	changes, bad, skipped, err := hashlist.ReadChanges(r.Body, f)
	if err != nil {
		bankErr(w, err)
		return
	}
	refused := []bankRefusal{}
	for _, b := range bad {
		refused = append(refused, bankRefusal{b.Line, b.Err.Error()})
	}
	ops := make([]store.LocalOp, 0, len(changes))
	for _, c := range changes {
		if c.Delete && c.Record.Type == "" {
			ops = append(ops, store.LocalOp{Delete: true, ContentID: c.ContentID})
			continue
		}
		sig, err := consortium.ParseSignal(c.Record.Type, c.Record.Value)
		if err != nil {
			refused = append(refused, bankRefusal{c.Record.Line, err.Error()})
			continue
		}
		ops = append(ops, store.LocalOp{Delete: c.Delete || deleteList, Entry: store.LocalEntry{Signal: sig,
			Labels: slices.Clone(c.Record.Labels), ContentID: c.Record.ContentID, Note: c.Record.Note}})
	}
	res, err := n.store.LocalApply(name, ops, replace, n.now().UnixMilli())
	if err != nil {
		bankErr(w, err)
		return
	}
	n.log.InfoContext(r.Context(), "local bank updated", "bank", name, "added", res.Added, "updated", res.Updated, "deleted", res.Deleted, "size", res.Size, "refused", len(refused))
	writeJSON(w, http.StatusOK, map[string]any{"added": res.Added, "updated": res.Updated, "deleted": res.Deleted, "size": res.Size, "skipped": skipped, "refused": refused})
}

// bankExists returns an error wrapping [store.ErrUnknownBank] when no local bank is named name.
func (n *Node) bankExists(name string) error {
	banks, err := n.store.LocalBanks()
	if err != nil {
		return err
	}
	for _, b := range banks {
		if b.Name == name {
			return nil
		}
	}
	return fmt.Errorf("%w %q: nothing to delete from", store.ErrUnknownBank, name)
}
