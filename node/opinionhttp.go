package node

// POST /v1/opinion writes a signed opinion entry in this node's member's log, for programs that
// speak HTTP only (the python-threatexchange exchange's report_opinion):
//
//	POST /v1/opinion  {"type":"pdq","value":"<hex>","stance":"false_positive","text":"..."}
//	200 {"member":"alpha","index":12}
//
// type accepts pytx's names too (video_md5, video_sha256); stance is one of the stances of
// `hashfed dispute` (agree, disagree_with_labels, false_positive, outdated, withdrawn); text is
// optional. A refused opinion is 400 with the reason.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// opinionRequestJSON is the body of POST /v1/opinion.
type opinionRequestJSON struct {
	Type   string `json:"type"`
	Value  string `json:"value"`
	Stance string `json:"stance"`
	Text   string `json:"text"`
}

func (n *Node) handleOpinion(w http.ResponseWriter, r *http.Request) {
	var req opinionRequestJSON
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", maxBodyBytes))
			return
		}
		writeError(w, http.StatusBadRequest, "request body: "+err.Error())
		return
	}
	sig, err := hmaSignal(req.Type, req.Value)
	if err != nil {
		writeErr(w, err)
		return
	}
	st, err := consortium.ParseStance(req.Stance)
	if err != nil {
		writeErr(w, fmt.Errorf("%w: %v", errBadRequest, err))
		return
	}
	en, err := consortium.NewOpinion(n.now().UnixMilli(), sig, st, req.Text)
	if err != nil {
		writeErr(w, fmt.Errorf("%w: %v", errBadRequest, err))
		return
	}
	en.TimeUnixMs = 0 // the node stamps the time
	out, err := n.Submit(r.Context(), []*pb.Entry{en})
	if err != nil {
		writeErr(w, err)
		return
	}
	if out[0].Err != nil {
		writeErr(w, fmt.Errorf("%w: %v", errBadRequest, out[0].Err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"member": n.id, "index": out[0].Index})
}
