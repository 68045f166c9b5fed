package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"syscall"
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

// feedClientRecord is what a feed consumer such as a pytx exchange reads of each record: the
// cursor, the operation, the signal and who lists it.
type feedClientRecord struct {
	Cursor string `json:"cursor"`
	Seq    uint64 `json:"seq"`
	Op     string `json:"op"`
	Signal *struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	} `json:"signal"`
	Labels   []string `json:"labels"`
	ListedBy []string `json:"listed_by"`
}

// benchFeed measures how fast a fresh client reads a node's whole feed over HTTP (JSON Lines
// pages, each record decoded as a client would), beside the gRPC Feed stream of the same node in
// the same run.
func benchFeed(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "feed")
	n := fs.Int("n", 2_000_000, "records in the feed")
	logs := fs.Int("logs", 10, "member logs the records are spread over")
	limit := fs.Int("limit", 10_000, "records per HTTP page (the feed's maximum is 10,000)")
	runs := fs.Int("runs", 3, "reads of the whole feed by each client; the median is reported")
	dir := fs.String("dir", "", "directory for the node's store (default a temporary one)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *logs < 2 || *n < *logs || *runs < 1 || *limit < 1 {
		return usageErr("want -logs 2 or more, -n at least -logs, -runs and -limit 1 or more")
	}
	tmp, done, err := workDir(*dir, "feed")
	if err != nil {
		return err
	}
	defer done()
	ids, g := majority(*logs, "m%02d")
	self := ids[0]
	per := *n / (*logs - 1)
	fmt.Fprintf(e.stdout, "building a store of %d records in %d logs...\n", per*(*logs-1), *logs-1)
	o := store.DefaultOptions()
	o.NoSync = true
	if err := os.MkdirAll(filepath.Join(tmp, self), 0o700); err != nil {
		return err
	}
	st, err := store.Open(filepath.Join(tmp, self, "hashfed.db"), g, o)
	if err != nil {
		return err
	}
	total := 0
	for k, id := range ids[1:] {
		es := benchEntries(id, per, k*per)
		if err := st.AppendRange(signedLog(g, id, es), 0, es, nil); err != nil {
			st.Close()
			return err
		}
		total += len(es)
	}
	if err := st.Close(); err != nil {
		return err
	}
	nd, err := localnet.Node(g, fixture.Key(self), tmp, nil, false, func(c *node.Config) {
		c.HTTPListen = "127.0.0.1:0"
		c.MemberListen = "127.0.0.1:0"
	})
	if err != nil {
		return err
	}
	defer nd.Close()

	var httpRates, grpcRates []float64
	var httpCPU []time.Duration
	var bytesRead int64
	for r := range *runs {
		start, cpu0 := time.Now(), cpuTime()
		stop := profile()
		got, nb, err := readHTTPFeed(ctx, "http://"+nd.HTTPAddr(), *limit)
		stop()
		httpCPU = append(httpCPU, cpuTime()-cpu0)
		if err != nil {
			return fmt.Errorf("HTTP feed: %w", err)
		}
		d := time.Since(start)
		if got != total {
			return fmt.Errorf("HTTP feed: read %d records, want %d", got, total)
		}
		httpRates = append(httpRates, float64(got)/d.Seconds())
		bytesRead = nb
		start = time.Now()
		got, err = readGRPCFeed(ctx, nd.MemberAddr())
		if err != nil {
			return fmt.Errorf("gRPC feed: %w", err)
		}
		gd := time.Since(start)
		if got != total {
			return fmt.Errorf("gRPC feed: read %d records, want %d", got, total)
		}
		grpcRates = append(grpcRates, float64(got)/gd.Seconds())
		fmt.Fprintf(e.stdout, "run %d: HTTP %d records in %v (%.0f/s, %.0f MB, %v of CPU, server and client); gRPC Feed %v (%.0f/s)\n", r+1, total, d.Round(time.Millisecond),
			httpRates[r], float64(nb)/1e6, httpCPU[r].Round(time.Millisecond), gd.Round(time.Millisecond), grpcRates[r])
	}
	cpuRates := make([]float64, len(httpCPU))
	for i, c := range httpCPU {
		cpuRates[i] = float64(total) / c.Seconds()
	}
	fmt.Fprintf(e.stdout, "records=%d limit=%d runs=%d http_per_s=%.0f http_per_cpu_s=%.0f grpc_per_s=%.0f http_bytes_per_record=%.0f rss_mb=%.0f\n",
		total, *limit, *runs, median(httpRates), median(cpuRates), median(grpcRates), float64(bytesRead)/float64(total), peakRSS())
	return nil
}

// readHTTPFeed reads the whole feed from the beginning as a fresh client does: a new connection,
// pages of limit records, each line decoded, the cursor of each answer passed back. It checks that
// the records come in order, each once, and returns how many it read and the bytes of the answers.
func readHTTPFeed(ctx context.Context, base string, limit int) (int, int64, error) {
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer client.CloseIdleConnections()
	cursor, count, nbytes := "", 0, int64(0)
	var next uint64
	for {
		u := fmt.Sprintf("%s/v1/feed?limit=%d&cursor=%s", base, limit, url.QueryEscape(cursor))
		req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
		if err != nil {
			return count, nbytes, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return count, nbytes, err
		}
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return count, nbytes, fmt.Errorf("%s: %s", resp.Status, b)
		}
		page := 0
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var rec feedClientRecord
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				resp.Body.Close()
				return count, nbytes, fmt.Errorf("record %d: %w", count, err)
			}
			if rec.Seq != next || rec.Op != "add" || rec.Signal == nil {
				resp.Body.Close()
				return count, nbytes, fmt.Errorf("record %d: got seq %d op %s, want seq %d, an add", count, rec.Seq, rec.Op, next)
			}
			nbytes += int64(len(sc.Bytes()) + 1)
			next++
			page++
			count++
		}
		err = sc.Err()
		resp.Body.Close()
		if err != nil {
			return count, nbytes, err
		}
		cursor = resp.Header.Get("Hashfed-Cursor")
		if page < limit {
			return count, nbytes, nil
		}
	}
}

// readGRPCFeed reads the whole feed from the beginning over the gRPC member API.
func readGRPCFeed(ctx context.Context, addr string) (int, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	stream, err := pb.NewMemberServiceClient(conn).Feed(ctx, &pb.FeedRequest{})
	if err != nil {
		return 0, err
	}
	count := 0
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			return count, nil
		}
		if err != nil {
			return count, err
		}
		if _, err := consortium.SignalFromProto(ev.GetSignal()); err != nil {
			return count, fmt.Errorf("event %d: %w", count, err)
		}
		count++
	}
}

// median returns the median of xs.
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// cpuTime returns the CPU time this process has used (user and system), or 0 if unknown.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
