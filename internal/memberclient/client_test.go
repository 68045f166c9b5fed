package memberclient

import (
	"context"
	"net"
	"regexp"
	"testing"
	"time"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errServer answers every Status call with err.
type errServer struct {
	pb.UnimplementedMemberServiceServer
	err error
}

func (s errServer) Status(context.Context, *pb.StatusRequest) (*pb.StatusResponse, error) {
	return nil, s.err
}

// serveErr serves errServer{err} on a loopback port and returns its address.
func serveErr(t *testing.T, err error) string {
	t.Helper()
	lis, lerr := net.Listen("tcp", "127.0.0.1:0")
	if lerr != nil {
		t.Fatal(lerr)
	}
	srv := grpc.NewServer()
	pb.RegisterMemberServiceServer(srv, errServer{err: err})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// TestCallErr checks that call errors are told apart by status code and connection state, not by
// their text: a node's own Unavailable answer whose message reads like a refused connection is
// passed on, not taken for a node that is not running.
func TestCallErr(t *testing.T) {
	tests := []struct {
		name string
		addr func(t *testing.T) string
		want string
	}{
		{"not running", closedAddr, `^node at 127\.0\.0\.1:\d+ is not running \(connection refused\); start it with hashfed serve$`},
		{"node unavailable", func(t *testing.T) string {
			return serveErr(t, status.Error(codes.Unavailable, "restoring: connect: connection refused by peer bravo"))
		}, `^node at 127\.0\.0\.1:\d+ unavailable: restoring: connect: connection refused by peer bravo$`},
		{"unauthenticated", func(t *testing.T) string {
			return serveErr(t, status.Error(codes.Unauthenticated, "missing bearer token"))
		}, `^node at 127\.0\.0\.1:\d+ refused the call: missing bearer token \(set --token or \$HASHFED_TOKEN\)$`},
		{"deadline", func(t *testing.T) string {
			return serveErr(t, status.Error(codes.DeadlineExceeded, "no such file"))
		}, `^node at 127\.0\.0\.1:\d+ did not answer in time$`},
		{"other", func(t *testing.T) string {
			return serveErr(t, status.Error(codes.InvalidArgument, "radius 300 out of range"))
		}, `^radius 300 out of range$`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Dial(tc.addr(t), "")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, got := c.Status(t.Context(), 10*time.Second)
			if got == nil || !regexp.MustCompile(tc.want).MatchString(got.Error()) {
				t.Errorf("got %v, want an error matching %s", got, tc.want)
			}
		})
	}
	if err := (&Client{}).Err(nil); err != nil {
		t.Errorf("Err(nil): got %v, want nil", err)
	}
}
