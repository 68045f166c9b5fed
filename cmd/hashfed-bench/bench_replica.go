package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	"github.com/hashfed/hashfed/internal/localnet"
	"github.com/hashfed/hashfed/node"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// benchReplica measures a read replica: how long it takes to catch up a member node's log of n
// entries (verified, stored, applied, indexed), and match queries/s through the member API (gRPC)
// and the JSON API (HTTP) of one node alone and of the node plus the replica, on loopback.
func benchReplica(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "replica")
	count := fs.Int("n", 1_000_000, "entries in the member node's log")
	clients := fs.Int("clients", 8, "concurrent match clients")
	dur := fs.Duration("d", 3*time.Second, "time each match measurement runs")
	sync := fs.Bool("fsync", true, "fsync appends")
	batch := fs.Int("batch", 64, "queries per call in the bulk measurements (MatchStream, /v1/match/batch; at most 1,000)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *batch < 1 || *batch > 1000 {
		return fmt.Errorf("-batch %d: want 1 to 1,000 queries a call", *batch)
	}
	dir, err := os.MkdirTemp("", "hashfed-bench-replica-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	g := fixture.Genesis(1, fixture.Members("alpha")...)
	rkey := fixture.Key("alpha-replica")
	a, err := localnet.Node(g, fixture.Key("alpha"), dir, nil, *sync, func(c *node.Config) {
		c.HTTPListen = "127.0.0.1:0"
		c.Replicas = []node.ReplicaKey{rkey.Public()}
	})
	if err != nil {
		return err
	}
	defer a.Close()
	fmt.Fprintf(e.stdout, "alpha adds %d entries...\n", *count)
	entries := benchEntries("alpha", *count, 0)
	for i := 0; i < *count; i += 10_000 {
		var es []*pb.Entry
		for _, raw := range entries[i:min(i+10_000, *count)] {
			en, err := consortium.ParseEntry(raw)
			if err != nil {
				return err
			}
			es = append(es, en)
		}
		out, err := a.Submit(ctx, es)
		if err != nil {
			return err
		}
		for _, r := range out {
			if r.Err != nil {
				return r.Err
			}
		}
	}
	want := uint64(*count)
	if !localnet.WaitUntil(60*time.Second, func() bool { h, ok := a.Store().Head("alpha"); return ok && h.Size == want }) {
		return fmt.Errorf("alpha did not sign its log")
	}
	last := signalOf(entries[*count-1])
	t0 := time.Now()
	r, err := localnet.Node(g, rkey, dir, nil, *sync, func(c *node.Config) {
		c.HTTPListen = "127.0.0.1:0"
		c.MemberListen = "unix:" + filepath.Join(dir, "replica.sock")
		c.Follow, c.FollowMember = a.PeerAddr(), "alpha"
	})
	if err != nil {
		return err
	}
	defer r.Close()
	ok := localnet.WaitUntil(10*time.Minute, func() bool {
		if r.Store().Size("alpha") != want {
			return false
		}
		ms, err := r.Store().MatchSignal(last, store.DefaultQuery())
		return err == nil && len(ms) == 1
	})
	catchup := time.Since(t0)
	if !ok {
		return fmt.Errorf("the replica did not catch up in %v: %d of %d", catchup, r.Store().Size("alpha"), want)
	}
	fmt.Fprintf(e.stdout, "the replica caught up %d entries in %v (verified, stored, applied, indexed; fsync %v)\n", *count, catchup.Round(time.Millisecond), *sync)

	sigs := make([]consortium.Signal, 0, 4096)
	for i := 0; i < 4096; i++ {
		sigs = append(sigs, signalOf(entries[(i*7919)%*count]))
	}
	entries = nil
	grpcQPS := func(addrs ...string) (float64, error) {
		var cls []pb.MemberServiceClient
		for _, ad := range addrs {
			conn, err := grpc.NewClient("unix://"+strings.TrimPrefix(ad, "unix:"), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return 0, err
			}
			defer conn.Close()
			cls = append(cls, pb.NewMemberServiceClient(conn))
		}
		return loadRun(*clients, *dur, func(w, i int) error {
			resp, err := cls[w%len(cls)].Match(ctx, &pb.MatchRequest{Signal: sigs[i%len(sigs)].Proto()})
			if err == nil && len(resp.Matches) == 0 {
				err = fmt.Errorf("no match for a listed signal")
			}
			return err
		})
	}
	httpQPS := func(addrs ...string) (float64, error) {
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *clients}}
		return loadRun(*clients, *dur, func(w, i int) error {
			s := sigs[i%len(sigs)]
			resp, err := hc.Get("http://" + addrs[w%len(addrs)] + "/v1/match?type=pdq&value=" + hex.EncodeToString(s.Bytes()))
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("HTTP %d", resp.StatusCode)
			}
			return nil
		})
	}
	g1, err := grpcQPS(a.MemberAddr())
	if err != nil {
		return err
	}
	g2, err := grpcQPS(a.MemberAddr(), r.MemberAddr())
	if err != nil {
		return err
	}
	h1, err := httpQPS(a.HTTPAddr())
	if err != nil {
		return err
	}
	h2, err := httpQPS(a.HTTPAddr(), r.HTTPAddr())
	if err != nil {
		return err
	}
	// Bulk: each client keeps one MatchStream open and sends -batch queries before reading their
	// answers, or POSTs -batch queries at a time to /v1/match/batch; a call counts -batch queries.
	streamQPS := func(addrs ...string) (float64, error) {
		var streams []pb.MemberService_MatchStreamClient
		for w := range *clients {
			ad := addrs[w%len(addrs)]
			conn, err := grpc.NewClient("unix://"+strings.TrimPrefix(ad, "unix:"), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return 0, err
			}
			defer conn.Close()
			st, err := pb.NewMemberServiceClient(conn).MatchStream(ctx)
			if err != nil {
				return 0, err
			}
			defer st.CloseSend()
			streams = append(streams, st)
		}
		calls, err := loadRun(*clients, *dur, func(w, i int) error {
			st := streams[w]
			sent := make(chan error, 1)
			go func() {
				for k := range *batch {
					if err := st.Send(&pb.MatchRequest{Id: fmt.Sprint(k), Signal: sigs[(i**batch+k)%len(sigs)].Proto()}); err != nil {
						sent <- err
						return
					}
				}
				sent <- nil
			}()
			for range *batch {
				resp, err := st.Recv()
				if err != nil {
					return err
				}
				if len(resp.Matches) == 0 {
					return fmt.Errorf("no match for a listed signal (stream)")
				}
			}
			return <-sent
		})
		return calls * float64(*batch), err
	}
	batchQPS := func(addrs ...string) (float64, error) {
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *clients}}
		calls, err := loadRun(*clients, *dur, func(w, i int) error {
			var body strings.Builder
			body.WriteString(`{"queries":[`)
			for k := range *batch {
				if k > 0 {
					body.WriteByte(',')
				}
				fmt.Fprintf(&body, `{"id":"%d","type":"pdq","value":"%s"}`, k, hex.EncodeToString(sigs[(i**batch+k)%len(sigs)].Bytes()))
			}
			body.WriteString(`]}`)
			resp, err := hc.Post("http://"+addrs[w%len(addrs)]+"/v1/match/batch", "application/json", strings.NewReader(body.String()))
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("HTTP %d", resp.StatusCode)
			}
			var out node.BatchJSON
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				return err
			}
			if len(out.Results) != *batch {
				return fmt.Errorf("batch: %d results for %d queries", len(out.Results), *batch)
			}
			for _, res := range out.Results {
				if res.Error != "" || len(res.Matches) == 0 {
					return fmt.Errorf("batch: no match for a listed signal (%s)", res.Error)
				}
			}
			return nil
		})
		return calls * float64(*batch), err
	}
	s1, err := streamQPS(a.MemberAddr())
	if err != nil {
		return err
	}
	s2, err := streamQPS(a.MemberAddr(), r.MemberAddr())
	if err != nil {
		return err
	}
	b1, err := batchQPS(a.HTTPAddr())
	if err != nil {
		return err
	}
	b2, err := batchQPS(a.HTTPAddr(), r.HTTPAddr())
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "match queries/s with %d clients, %v each: gRPC node %.0f, node+replica %.0f; HTTP node %.0f, node+replica %.0f\n", *clients, *dur, g1, g2, h1, h2)
	fmt.Fprintf(e.stdout, "bulk match queries/s (%d queries a call): gRPC MatchStream node %.0f, node+replica %.0f; HTTP /v1/match/batch node %.0f, node+replica %.0f\n", *batch, s1, s2, b1, b2)
	fmt.Fprintf(e.stdout, "entries=%d catchup_s=%.2f catchup_entries_per_s=%.0f grpc_node_qps=%.0f grpc_node_replica_qps=%.0f http_node_qps=%.0f http_node_replica_qps=%.0f stream_node_qps=%.0f stream_node_replica_qps=%.0f batch_node_qps=%.0f batch_node_replica_qps=%.0f rss_mb=%.0f\n",
		*count, catchup.Seconds(), float64(*count)/catchup.Seconds(), g1, g2, h1, h2, s1, s2, b1, b2, peakRSS())
	return nil
}

// loadRun runs call from clients goroutines for d and returns the calls per second; the first
// error stops the run.
func loadRun(clients int, d time.Duration, call func(worker, i int) error) (float64, error) {
	var n atomic.Int64
	var first error
	var once sync.Once
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := range clients {
		wg.Go(func() {
			for i := w; time.Now().Before(stop); i += clients {
				if err := call(w, i); err != nil {
					once.Do(func() { first = err })
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(t0).Seconds(), first
}
