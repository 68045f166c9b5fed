package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/consortium/pdq"
	"github.com/hashfed/hashfed/consortium/vpdq"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
)

// Video matching at the edge: gRPC MatchVideo and HTTP POST /v1/match/video. Videos are hashed
// by the caller (hashfed match video.mp4 hashes it locally): the node never decodes video.
//
//	POST /v1/match/video  body {"frames":[{"pdq":"<64 hex>","quality":100,"timestamp":1.5}, ...],
//	                       "distance":31,"quality":50,"query_percent":0,"compared_percent":80,
//	                       "include_hidden":false} (all but frames optional: the defaults shown).
//	                       Answers {"videos":[{"member","content_id","query_percent",
//	                       "compared_percent","query_frames","compared_frames",
//	                       "frames":[{"query_seconds","listed_seconds","distance","part"}],
//	                       "parts":[<match>...]}],"images":[{"query_seconds",<match>}]}.
//	                       The body is at most 1 MiB: about 9,000 frames (hash one frame a second).

// videoQueryFromProto validates a video match request.
func videoQueryFromProto(req *pb.MatchVideoRequest) ([]vpdq.Frame, store.VideoQuery, error) {
	q := store.DefaultVideoQuery()
	q.IncludeHidden = req.GetIncludeHidden()
	if req.Distance != nil {
		q.Options.Distance = int(min(*req.Distance, 1000))
	}
	if req.Quality != nil {
		q.Options.Quality = int(min(*req.Quality, 1000))
	}
	if req.QueryPercent != nil {
		q.Options.QueryPercent = *req.QueryPercent
	}
	if req.ComparedPercent != nil {
		q.Options.ComparedPercent = *req.ComparedPercent
	}
	if err := q.Options.Validate(); err != nil {
		return nil, q, fmt.Errorf("%w: %w", errBadRequest, err)
	}
	if len(req.GetFrames()) > store.MaxQueryFrames {
		return nil, q, fmt.Errorf("%w: %d frames, at most %d (hash one frame a second)", errBadRequest, len(req.GetFrames()), store.MaxQueryFrames)
	}
	frames := make([]vpdq.Frame, len(req.GetFrames()))
	for i, f := range req.GetFrames() {
		if len(f.GetPdq()) != pdq.HashSize {
			return nil, q, fmt.Errorf("%w: frame %d: pdq is %d bytes, want 32", errBadRequest, i, len(f.GetPdq()))
		}
		if f.GetQuality() > vpdq.MaxQuality || f.GetTimeMs() < 0 {
			return nil, q, fmt.Errorf("%w: frame %d: quality %d (want 0 to 100), time %d ms (want ≥ 0)", errBadRequest, i, f.GetQuality(), f.GetTimeMs())
		}
		frames[i] = vpdq.Frame{Number: int64(i), Quality: int(f.GetQuality()), Hash: pdq.Hash(f.GetPdq()), MS: f.GetTimeMs()}
	}
	return frames, q, nil
}

// matchVideo answers one video query and records it in the metrics.
func (n *Node) matchVideo(req *pb.MatchVideoRequest) (*pb.MatchVideoResponse, error) {
	start := time.Now()
	frames, q, err := videoQueryFromProto(req)
	var res store.VideoResult
	if err == nil {
		res, err = n.store.MatchVideo(frames, q)
	}
	if errors.Is(err, store.ErrBadVideoQuery) {
		err = fmt.Errorf("%w: %w", errBadRequest, err)
	}
	n.metrics.matchLatency.WithLabelValues("vpdq").Observe(time.Since(start).Seconds())
	outcome := "miss"
	switch {
	case err != nil:
		outcome = "error"
	case len(res.Videos)+len(res.Images) > 0:
		outcome = "hit"
	}
	n.metrics.matchQueries.WithLabelValues("vpdq", outcome).Inc()
	if err != nil {
		return nil, err
	}
	return videoResultToProto(res), nil
}

func videoResultToProto(res store.VideoResult) *pb.MatchVideoResponse {
	out := &pb.MatchVideoResponse{}
	for _, v := range res.Videos {
		pv := &pb.VideoMatch{Member: v.Member, ContentId: v.ContentID, QueryPercent: v.QueryPercent, ComparedPercent: v.ComparedPercent,
			QueryFrames: uint32(v.QueryFrames), ComparedFrames: uint32(v.ComparedFrames), Parts: matchesToProto(v.Parts)}
		for _, f := range v.Frames {
			pv.Frames = append(pv.Frames, &pb.FramePair{QueryMs: f.QueryMS, ListedMs: f.ListedMS, Distance: uint32(f.Distance), Part: f.Part.Proto()})
		}
		out.Videos = append(out.Videos, pv)
	}
	for _, im := range res.Images {
		out.Images = append(out.Images, &pb.FrameImageMatch{QueryMs: im.QueryMS, Match: matchToProto(im.Match)})
	}
	return out
}

// MatchVideo matches a video's frame hashes.
func (s *memberServer) MatchVideo(ctx context.Context, req *pb.MatchVideoRequest) (*pb.MatchVideoResponse, error) {
	resp, err := s.n.matchVideo(req)
	if err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}

// VideoFrameJSON is one frame of a video query in JSON.
type VideoFrameJSON struct {
	PDQ     string  `json:"pdq"`
	Quality int     `json:"quality"`
	Seconds float64 `json:"timestamp"`
}

// videoRequestJSON is the body of POST /v1/match/video.
type videoRequestJSON struct {
	Frames          []VideoFrameJSON `json:"frames"`
	Distance        *uint32          `json:"distance"`
	Quality         *uint32          `json:"quality"`
	QueryPercent    *float64         `json:"query_percent"`
	ComparedPercent *float64         `json:"compared_percent"`
	IncludeHidden   bool             `json:"include_hidden"`
}

// FramePairJSON is a query frame and the listed frame it matched.
type FramePairJSON struct {
	QuerySeconds  float64    `json:"query_seconds"`
	ListedSeconds float64    `json:"listed_seconds"`
	Distance      int        `json:"distance"`
	Part          SignalJSON `json:"part"`
}

// VideoMatchJSON is a listed video that a query video matches.
type VideoMatchJSON struct {
	Member          string          `json:"member"`
	ContentID       string          `json:"content_id"`
	QueryPercent    float64         `json:"query_percent"`
	ComparedPercent float64         `json:"compared_percent"`
	QueryFrames     int             `json:"query_frames"`
	ComparedFrames  int             `json:"compared_frames"`
	Frames          []FramePairJSON `json:"frames"`
	Parts           []MatchJSON     `json:"parts"`
}

// FrameImageJSON is a listed image that a frame of the query matches.
type FrameImageJSON struct {
	QuerySeconds float64 `json:"query_seconds"`
	MatchJSON
}

// VideoMatchesJSON is the answer of POST /v1/match/video and of `hashfed match --json` for a
// video.
type VideoMatchesJSON struct {
	Videos []VideoMatchJSON `json:"videos"`
	Images []FrameImageJSON `json:"images"`
}

// NewVideoMatchesJSON returns the JSON form of a video match answer (never null lists).
func NewVideoMatchesJSON(r *pb.MatchVideoResponse) VideoMatchesJSON {
	out := VideoMatchesJSON{Videos: []VideoMatchJSON{}, Images: []FrameImageJSON{}}
	for _, v := range r.GetVideos() {
		vj := VideoMatchJSON{Member: v.Member, ContentID: v.ContentId, QueryPercent: v.QueryPercent, ComparedPercent: v.ComparedPercent,
			QueryFrames: int(v.QueryFrames), ComparedFrames: int(v.ComparedFrames), Frames: []FramePairJSON{}, Parts: NewMatchesJSON(v.Parts).Matches}
		for _, f := range v.Frames {
			part := SignalJSON{Type: f.GetPart().GetType()}
			if sig, err := consortium.SignalFromProto(f.GetPart()); err == nil {
				part.Value = sig.Text()
			}
			vj.Frames = append(vj.Frames, FramePairJSON{QuerySeconds: float64(f.QueryMs) / 1000, ListedSeconds: float64(f.ListedMs) / 1000, Distance: int(f.Distance), Part: part})
		}
		out.Videos = append(out.Videos, vj)
	}
	for _, im := range r.GetImages() {
		out.Images = append(out.Images, FrameImageJSON{QuerySeconds: float64(im.QueryMs) / 1000, MatchJSON: NewMatchJSON(im.Match)})
	}
	return out
}

func (n *Node) handleMatchVideo(w http.ResponseWriter, r *http.Request) {
	var req videoRequestJSON
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes (hash fewer frames: one a second)", maxBodyBytes))
			return
		}
		writeError(w, http.StatusBadRequest, "request body: "+err.Error())
		return
	}
	preq := &pb.MatchVideoRequest{Distance: req.Distance, Quality: req.Quality, QueryPercent: req.QueryPercent, ComparedPercent: req.ComparedPercent, IncludeHidden: req.IncludeHidden}
	for i, f := range req.Frames {
		h, err := pdq.ParseHash(f.PDQ)
		if err != nil {
			writeErr(w, fmt.Errorf("%w: frame %d: %v", errBadRequest, i, err))
			return
		}
		if f.Quality < 0 || f.Quality > vpdq.MaxQuality || !(f.Seconds >= 0 && f.Seconds < 1e9) {
			writeErr(w, fmt.Errorf("%w: frame %d: quality %d (want 0 to 100), timestamp %v (want seconds from 0)", errBadRequest, i, f.Quality, f.Seconds))
			return
		}
		preq.Frames = append(preq.Frames, &pb.VideoFrame{Pdq: h[:], Quality: uint32(f.Quality), TimeMs: int64(f.Seconds*1000 + 0.5)})
	}
	resp, err := n.matchVideo(preq)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, NewVideoMatchesJSON(resp))
}
