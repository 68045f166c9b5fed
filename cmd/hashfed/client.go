package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// nodeFlags are the flags of every command that talks to a running node's member API.
type nodeFlags struct {
	addr, token string
	timeout     time.Duration
}

func (f *nodeFlags) register(fs *flag.FlagSet, e *env) {
	def := e.getenv("HASHFED_NODE")
	if def == "" {
		def = "127.0.0.1:7401"
	}
	fs.StringVar(&f.addr, "node", def, "the node's member API: host:port or unix:PATH ($HASHFED_NODE)")
	fs.StringVar(&f.token, "token", e.getenv("HASHFED_TOKEN"), "the member API's bearer token ($HASHFED_TOKEN)")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "give up on a call after this long")
}

// client is a connection to a node's member API.
type client struct {
	pb.MemberServiceClient
	conn *grpc.ClientConn
	addr string
	md   metadata.MD
}

func (f *nodeFlags) dial() (*client, error) {
	target := f.addr
	if p, ok := strings.CutPrefix(target, "unix:"); ok {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("node at %s is not running (no socket: %v); start it with hashfed serve", f.addr, err)
		}
		// gRPC reads "unix://NAME" as a host and path: a relative path must be made absolute.
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("node address %s: %w", f.addr, err)
		}
		target = "unix://" + abs
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20), grpc.MaxCallSendMsgSize(256<<20)))
	if err != nil {
		return nil, fmt.Errorf("node address %s: %w", f.addr, err)
	}
	c := &client{MemberServiceClient: pb.NewMemberServiceClient(conn), conn: conn, addr: f.addr}
	if f.token != "" {
		c.md = metadata.Pairs("authorization", "Bearer "+f.token)
	}
	return c, nil
}

// ctx returns a call context with the token and a deadline (0 for none).
func (c *client) ctx(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	ctx := parent
	if c.md != nil {
		ctx = metadata.NewOutgoingContext(ctx, c.md)
	}
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

func (c *client) Close() error { return c.conn.Close() }

// callErr turns a gRPC error into a message a user can act on. It goes by the status code and the
// connection's state, never by the text of a message: a call that fails with Unavailable while the
// connection is not ready never reached a node; Unavailable on a ready connection is the node's own
// answer, passed on as it sent it.
func (c *client) callErr(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("node at %s did not answer in time", c.addr)
		}
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		if c.conn.GetState() != connectivity.Ready {
			return fmt.Errorf("node at %s is not running (connection refused); start it with hashfed serve", c.addr)
		}
		return fmt.Errorf("node at %s unavailable: %s", c.addr, st.Message())
	case codes.Unauthenticated:
		return fmt.Errorf("node at %s refused the call: %s (set --token or $HASHFED_TOKEN)", c.addr, st.Message())
	case codes.DeadlineExceeded:
		return fmt.Errorf("node at %s did not answer in time", c.addr)
	}
	return errors.New(st.Message())
}

// signalArgs reads a signal from positional TYPE VALUE arguments.
func signalArgs(pos []string) (consortium.Signal, error) {
	if len(pos) != 2 {
		return consortium.Signal{}, usageErr("want TYPE VALUE (e.g. pdq f8f8f0ce…, md5 …, sha256 …, url https://…), got %d arguments", len(pos))
	}
	return consortium.ParseSignal(pos[0], pos[1])
}
