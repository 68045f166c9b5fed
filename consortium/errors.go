package consortium

import "errors"

// Sentinel errors. Functions in this package wrap them with the detail that names the problem
// (which field, which member, which index), so callers test with [errors.Is] and show the message.
var (
	// ErrMalformed means bytes could not be decoded as the expected record.
	ErrMalformed = errors.New("malformed record")

	// ErrInvalidEntry means an entry decoded but breaks a rule of the protocol.
	ErrInvalidEntry = errors.New("invalid entry")

	// ErrInvalidSignal means a signal value is not a valid value of its type.
	ErrInvalidSignal = errors.New("invalid signal")

	// ErrUnknownSignalType means a signal type name is not one this version knows.
	ErrUnknownSignalType = errors.New("unknown signal type")

	// ErrInvalidLabel means a label is malformed or names an unknown value in a known namespace.
	ErrInvalidLabel = errors.New("invalid label")

	// ErrInvalidKey means a key is malformed or of the wrong kind.
	ErrInvalidKey = errors.New("invalid key")

	// ErrInvalidMemberID means a member id is not 1-32 characters of [a-z0-9-] starting with a
	// letter or digit.
	ErrInvalidMemberID = errors.New("invalid member id")

	// ErrInvalidGenesis means a genesis document breaks a rule (roster, quorum, signatures).
	ErrInvalidGenesis = errors.New("invalid genesis")

	// ErrUnknownMember means a member id is not on the roster.
	ErrUnknownMember = errors.New("unknown member")

	// ErrNotPermitted means the author's role does not allow the operation (an observer adding, a
	// member revoking another member's add).
	ErrNotPermitted = errors.New("not permitted")

	// ErrBadSignature means a signature did not verify, or a note carried no signature of the
	// expected key.
	ErrBadSignature = errors.New("bad signature")

	// ErrRootMismatch means a root computed over received entries differs from a signed checkpoint.
	ErrRootMismatch = errors.New("root does not match checkpoint")

	// ErrInconsistent means two tree heads are not consistent with an append-only log.
	ErrInconsistent = errors.New("inconsistent log")

	// ErrEquivocation means a member signed two checkpoints that cannot both be true.
	ErrEquivocation = errors.New("equivocation")

	// ErrExpired means an add's expiry time is not after the time it is written.
	ErrExpired = errors.New("expired")

	// ErrWrongAuthor means the author field of a proposal, certification or referral names someone
	// other than the member whose log holds it: a copy of another's entry (or a forgery in another's
	// name), which has no effect in the copier's log.
	ErrWrongAuthor = errors.New("author is not the log's owner")

	// ErrDoubleEndorse means a member voted for two proposals of one roster epoch.
	ErrDoubleEndorse = errors.New("second endorsement for one epoch")

	// ErrOutOfOrder means entries were not given in log order, or an entry's time is before the
	// previous entry's time.
	ErrOutOfOrder = errors.New("out of order")
)
