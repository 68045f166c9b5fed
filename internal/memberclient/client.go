// Package memberclient is the client side of a node's member API, shared by the hashfed
// subcommands and its demo: dialling a node, the calls the commands make, turning a call's error
// into a message a user can act on, and the files a client reads and writes (audit bundles on disk,
// image files hashed for a submission).
package memberclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Client is a connection to a node's member API.
type Client struct {
	pb.MemberServiceClient
	conn *grpc.ClientConn
	addr string
	md   metadata.MD
}

// Dial connects to the member API at addr (host:port or unix:PATH), sending token as a bearer
// token when it is not empty. A unix socket that does not exist is refused at once.
func Dial(addr, token string) (*Client, error) {
	target := addr
	if p, ok := strings.CutPrefix(target, "unix:"); ok {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("node at %s is not running (no socket: %v); start it with hashfed serve", addr, err)
		}
		// gRPC reads "unix://NAME" as a host and path: a relative path must be made absolute.
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("node address %s: %w", addr, err)
		}
		target = "unix://" + abs
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20), grpc.MaxCallSendMsgSize(256<<20)))
	if err != nil {
		return nil, fmt.Errorf("node address %s: %w", addr, err)
	}
	c := &Client{MemberServiceClient: pb.NewMemberServiceClient(conn), conn: conn, addr: addr}
	if token != "" {
		c.md = metadata.Pairs("authorization", "Bearer "+token)
	}
	return c, nil
}

// Ctx returns a call context with the token and a deadline (0 for none).
func (c *Client) Ctx(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	ctx := parent
	if c.md != nil {
		ctx = metadata.NewOutgoingContext(ctx, c.md)
	}
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// listening reports whether something accepts TCP connections at the client's address (a
// host:port one): a call that never got a gRPC connection then reached something else than a
// member API.
func (c *Client) listening() bool {
	if strings.HasPrefix(c.addr, "unix:") {
		return false
	}
	conn, err := net.DialTimeout("tcp", c.addr, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// Err turns a gRPC error into a message a user can act on. It goes by the status code and the
// connection's state, never by the text of a message: a call that fails with Unavailable while the
// connection is not ready never reached a node; Unavailable on a ready connection is the node's own
// answer, passed on as it sent it.
func (c *Client) Err(err error) error {
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
			if c.listening() {
				return fmt.Errorf("%s accepts connections but does not answer as a node's member API (gRPC): is it the node's HTTP, peer or gossip port? --node wants the address of [member_api] listen in the node's config (default 127.0.0.1:7401)", c.addr)
			}
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
