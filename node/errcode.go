package node

import (
	"context"
	"errors"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// codeOf classifies an error for the edge: what the caller must fix (INVALID_ARGUMENT), what the
// state does not allow (FAILED_PRECONDITION), a closing node (UNAVAILABLE), the caller's context,
// and anything else (INTERNAL).
func codeOf(err error) codes.Code {
	is := func(targets ...error) bool {
		for _, t := range targets {
			if errors.Is(err, t) {
				return true
			}
		}
		return false
	}
	switch {
	case is(context.Canceled):
		return codes.Canceled
	case is(context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case is(store.ErrClosed, errClosed, ErrRestoring):
		return codes.Unavailable
	case is(store.ErrBusy):
		return codes.ResourceExhausted
	case is(errBadRequest, store.ErrLowQuality, store.ErrPolicy, consortium.ErrInvalidSignal, consortium.ErrUnknownSignalType,
		consortium.ErrInvalidLabel, consortium.ErrInvalidEntry, consortium.ErrMalformed, consortium.ErrExpired,
		consortium.ErrInvalidMemberID, consortium.ErrInvalidKey):
		return codes.InvalidArgument
	case is(consortium.ErrNotPermitted, consortium.ErrUnknownMember, consortium.ErrDoubleEndorse,
		consortium.ErrOutOfOrder, store.ErrForked, store.ErrNotListed, ErrOwnLogConflict, ErrSecondWriter, ErrReadReplica):
		return codes.FailedPrecondition
	}
	if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown {
		return s.Code()
	}
	return codes.Internal
}

// toStatus turns an error into a gRPC status error with the error's message (a status error is
// returned as it is).
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
		return err
	}
	return status.Error(codeOf(err), err.Error())
}
