package main

import (
	"context"
	"flag"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/memberclient"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
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

func (f *nodeFlags) dial() (*memberclient.Client, error) { return memberclient.Dial(f.addr, f.token) }

// fetchStatus dials the node and returns its status.
func fetchStatus(ctx context.Context, nf *nodeFlags) (*pb.StatusResponse, error) {
	c, err := nf.dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Status(ctx, nf.timeout)
}

// send submits entries to the node as one transaction, within timeout, and returns the node's
// result for each.
func send(ctx context.Context, nf *nodeFlags, entries []*pb.Entry, timeout time.Duration) ([]*pb.SubmitResult, error) {
	c, err := nf.dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Submit(ctx, entries, timeout)
}

// fetchBundle reads the audit bundle from a node's member API.
func fetchBundle(ctx context.Context, nf *nodeFlags) (consortium.AuditInput, error) {
	c, err := nf.dial()
	if err != nil {
		return consortium.AuditInput{}, err
	}
	defer c.Close()
	return c.Bundle(ctx)
}

// signalArgs reads a signal from positional TYPE VALUE arguments.
func signalArgs(pos []string) (consortium.Signal, error) {
	if len(pos) != 2 {
		return consortium.Signal{}, usageErr("want TYPE VALUE (e.g. pdq f8f8f0ce…, md5 …, sha256 …, url https://…), got %d arguments", len(pos))
	}
	return consortium.ParseSignal(pos[0], pos[1])
}
