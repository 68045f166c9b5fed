package node

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// The protected list and the referrals (PROTOCOL.md sections 15 and 15) through the member API:
// the Certifications and Referrals calls, their HTTP forms
//
//	GET /v1/certifications             CertificationsResponse as protojson
//	GET /v1/referrals[?all=true]       ReferralsResponse as protojson: by default the referrals open
//	                                   for this node's member (addressed to it, not answered yet)
//
// and the protections carried by matches and feed events.

func signalsToProto(sigs []consortium.Signal) []*pb.Signal {
	out := make([]*pb.Signal, len(sigs))
	for i, s := range sigs {
		out[i] = s.Proto()
	}
	return out
}

// protectionToProto converts one certification in force.
func protectionToProto(p consortium.Protection) *pb.Protection {
	return &pb.Protection{Certification: p.Hash[:], Author: p.Author, Index: p.Index, TimeUnixMs: p.Time, Category: p.Category,
		Reason: p.Reason, Subject: p.Subject, ExpiresUnixMs: p.Expires, Signals: signalsToProto(p.Signals)}
}

func protectionsToProto(ps []consortium.Protection) []*pb.Protection {
	if len(ps) == 0 {
		return nil
	}
	out := make([]*pb.Protection, len(ps))
	for i, p := range ps {
		out[i] = protectionToProto(p)
	}
	return out
}

// referralToProto converts one referral in force with its answers.
func referralToProto(r consortium.Referral) *pb.ReferralView {
	v := &pb.ReferralView{Referral: r.Hash[:], Author: r.Author, Index: r.Index, TimeUnixMs: r.Time, DeadlineUnixMs: r.Deadline,
		Signals: signalsToProto(r.Signals), LegalBasis: r.LegalBasis, OrderRef: r.OrderRef, Note: r.Note, To: r.To, Addressed: r.Addressed}
	for _, a := range r.Answers {
		v.Answers = append(v.Answers, &pb.AnswerView{Member: a.Member, Index: a.Index, TimeUnixMs: a.Time, Outcome: a.Outcome,
			Reason: a.Reason, DelayMs: a.Delay().Milliseconds(), Late: a.Late()})
	}
	return v
}

// Certifications returns the protected list: every certification in force, expired ones left out.
func (n *Node) Certifications() *pb.CertificationsResponse {
	now := n.now().UnixMilli()
	resp := &pb.CertificationsResponse{}
	n.store.View(func(s *consortium.State) {
		for _, p := range s.Certifications() {
			if p.Expires == 0 || p.Expires > now {
				resp.Certifications = append(resp.Certifications, protectionToProto(p))
			}
		}
	})
	return resp
}

// Referrals returns the referrals in force: all of them, or those open for the node's member.
func (n *Node) Referrals(all bool) *pb.ReferralsResponse {
	resp := &pb.ReferralsResponse{}
	n.store.View(func(s *consortium.State) {
		rs := s.OpenReferrals(n.id)
		if all {
			rs = s.Referrals()
		}
		for _, r := range rs {
			resp.Referrals = append(resp.Referrals, referralToProto(r))
		}
	})
	return resp
}

// Certifications lists the protected list.
func (s *memberServer) Certifications(ctx context.Context, req *pb.CertificationsRequest) (*pb.CertificationsResponse, error) {
	return s.n.Certifications(), nil
}

// Referrals lists the referrals in force.
func (s *memberServer) Referrals(ctx context.Context, req *pb.ReferralsRequest) (*pb.ReferralsResponse, error) {
	return s.n.Referrals(req.GetAll()), nil
}

func writeProtoJSON(w http.ResponseWriter, m proto.Message) {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		writeErr(w, fmt.Errorf("encode answer: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func (n *Node) handleCertifications(w http.ResponseWriter, r *http.Request) {
	writeProtoJSON(w, n.Certifications())
}

func (n *Node) handleReferrals(w http.ResponseWriter, r *http.Request) {
	all := false
	switch v := r.URL.Query().Get("all"); v {
	case "", "false":
	case "true":
		all = true
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("all=%q: want true or false", v))
		return
	}
	writeProtoJSON(w, n.Referrals(all))
}

// ProtectionJSON is a certification that protects a match, in hashfed's JSON.
type ProtectionJSON struct {
	Certification string `json:"certification"`
	Author        string `json:"author"`
	Index         uint64 `json:"index"`
	Time          string `json:"time"`
	Category      string `json:"category"`
	Reason        string `json:"reason"`
	Subject       string `json:"subject,omitempty"`
	Expires       string `json:"expires,omitempty"`
}

// newProtectionsJSON returns the JSON form of a match's protections (nil when none).
func newProtectionsJSON(ps []*pb.Protection) []ProtectionJSON {
	var out []ProtectionJSON
	for _, p := range ps {
		j := ProtectionJSON{Certification: fmt.Sprintf("%x", p.Certification), Author: p.Author, Index: p.Index,
			Time: rfc3339(time.UnixMilli(p.TimeUnixMs)), Category: consortium.CategoryName(p.Category), Reason: p.Reason, Subject: p.Subject}
		if p.ExpiresUnixMs != 0 {
			j.Expires = rfc3339(time.UnixMilli(p.ExpiresUnixMs))
		}
		out = append(out, j)
	}
	return out
}
