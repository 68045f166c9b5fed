package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// maxBatchQueries bounds the queries of one POST /v1/match/batch (the body is also bounded, by
// maxBodyBytes).
const maxBatchQueries = 1000

// batchQueryJSON is one query of POST /v1/match/batch: a /v1/match body with an id the answer
// echoes.
type batchQueryJSON struct {
	ID string `json:"id"`
	matchRequestJSON
}

// batchRequestJSON is the body of POST /v1/match/batch.
type batchRequestJSON struct {
	Queries []batchQueryJSON `json:"queries"`
}

// BatchResultJSON is the answer to one query of a batch: its id, then the /v1/match answer, or
// the error that query alone met (matches then empty).
type BatchResultJSON struct {
	ID string `json:"id"`
	MatchesJSON
	Error string `json:"error,omitempty"`
}

// BatchJSON is the answer of POST /v1/match/batch: one result per query, in the request's order.
type BatchJSON struct {
	Results []BatchResultJSON `json:"results"`
}

// handleMatchBatch answers many queries in one request. A malformed body, or more than
// maxBatchQueries queries, is refused as a whole (400, 413); a query that is itself bad (a bad
// hash, a radius out of range) gets its error in its result and the others are answered.
func (n *Node) handleMatchBatch(w http.ResponseWriter, r *http.Request) {
	if err := onlyParams(r); err != nil {
		writeErr(w, err)
		return
	}
	var req batchRequestJSON
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes: send at most %d queries at a time", maxBodyBytes, maxBatchQueries))
			return
		}
		writeError(w, http.StatusBadRequest, "request body: "+err.Error())
		return
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "request body: more than one JSON value")
		return
	}
	if len(req.Queries) > maxBatchQueries {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%d queries in one batch, at most %d: split the batch", len(req.Queries), maxBatchQueries))
		return
	}
	out := BatchJSON{Results: make([]BatchResultJSON, len(req.Queries))}
	for i, q := range req.Queries {
		res := BatchResultJSON{ID: q.ID, MatchesJSON: MatchesJSON{Matches: []MatchJSON{}}}
		sig, mq, err := parseQuery(q.matchRequestJSON)
		if err != nil {
			n.metrics.matchQueries.WithLabelValues(typeLabel(q.Type), "error").Inc()
			res.Error = err.Error()
			out.Results[i] = res
			continue
		}
		m, err := n.match(sig, mq)
		if err != nil {
			if r.Context().Err() != nil || n.ctx.Err() != nil {
				writeErr(w, err)
				return
			}
			res.Error = err.Error()
			out.Results[i] = res
			continue
		}
		res.MatchesJSON = NewMatchResponseJSON(m.response(""))
		if res.Local, err = n.localMatches(sig, mq.Radius); err != nil {
			writeErr(w, err)
			return
		}
		out.Results[i] = res
	}
	writeJSON(w, http.StatusOK, out)
}
