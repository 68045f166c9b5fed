package consortium

import (
	"slices"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// The constructors of the roles' entries (see build.go for t). Signals are sorted and repeats
// dropped, and the members a referral names sorted, so a caller may give them in any order.

// CertifyOptions are the optional fields of a certification.
type CertifyOptions struct {
	// Subject names what is certified for people (an account's handle or URL).
	Subject string
	// ExpiresUnixMs is when the certification lapses (0: never).
	ExpiresUnixMs int64
}

func signalsProto(sigs []Signal) []*pb.Signal {
	s := slices.Clone(sigs)
	SortSignals(s)
	s = slices.Compact(s)
	out := make([]*pb.Signal, len(s))
	for i, x := range s {
		out[i] = x.Proto()
	}
	return out
}

// NewCertify returns author's certification of sigs as category, for reason.
func NewCertify(t int64, author string, sigs []Signal, category pb.Category, reason string, o CertifyOptions) (*pb.Entry, error) {
	return checked(&pb.Entry{TimeUnixMs: t, Op: &pb.Entry_Certify{Certify: &pb.Certify{Author: author, Signals: signalsProto(sigs),
		Category: category, Reason: reason, Subject: o.Subject, ExpiresUnixMs: o.ExpiresUnixMs}}})
}

// NewUncertify returns the withdrawal of the author's certification with leaf hash cert.
func NewUncertify(t int64, cert Hash, reason string) (*pb.Entry, error) {
	return checked(&pb.Entry{TimeUnixMs: t, Op: &pb.Entry_Uncertify{Uncertify: &pb.Uncertify{Certification: cert[:], Reason: reason}}})
}

// ReferOptions are the optional fields of a referral.
type ReferOptions struct {
	// OrderRef is the reference of a removal order or case.
	OrderRef string
	// To names the members addressed (none: every member).
	To []string
	// Note is free text for the members' reviewers.
	Note string
}

// NewRefer returns author's referral of sigs under legalBasis, due at deadline (Unix ms).
func NewRefer(t int64, author string, sigs []Signal, legalBasis string, deadline int64, o ReferOptions) (*pb.Entry, error) {
	to := slices.Compact(slices.Sorted(slices.Values(o.To)))
	return checked(&pb.Entry{TimeUnixMs: t, Op: &pb.Entry_Refer{Refer: &pb.Refer{Author: author, Signals: signalsProto(sigs),
		LegalBasis: legalBasis, OrderRef: o.OrderRef, DeadlineUnixMs: deadline, To: to, Note: o.Note}}})
}

// NewAnswer returns the author's answer to the referral with leaf hash referral.
func NewAnswer(t int64, referral Hash, outcome pb.Outcome, reason string) (*pb.Entry, error) {
	return checked(&pb.Entry{TimeUnixMs: t, Op: &pb.Entry_Answer{Answer: &pb.Answer{Referral: referral[:], Outcome: outcome, Reason: reason}}})
}
