package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	"github.com/hashfed/hashfed/internal/localnet"
	"github.com/hashfed/hashfed/node"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
)

// arrivals records, per node, when each signal became listed or unlisted there.
type arrivals struct {
	mu   sync.Mutex
	seen map[string]map[consortium.Signal]time.Time // key: node + "/" + kind
}

func (a *arrivals) hook(id string) func(consortium.Change) {
	return func(c consortium.Change) {
		if c.Kind != consortium.Listed && c.Kind != consortium.Unlisted {
			return
		}
		k := id + "/" + c.Kind.String()
		now := time.Now()
		a.mu.Lock()
		m := a.seen[k]
		if m == nil {
			m = map[consortium.Signal]time.Time{}
			a.seen[k] = m
		}
		if _, ok := m[c.Signal]; !ok {
			m[c.Signal] = now
		}
		a.mu.Unlock()
	}
}

// last returns when the last of ids saw sig change kind, and whether all did.
func (a *arrivals) last(ids []string, kind consortium.ChangeKind, sig consortium.Signal) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var t time.Time
	for _, id := range ids {
		at, ok := a.seen[id+"/"+kind.String()][sig]
		if !ok {
			return t, false
		}
		if at.After(t) {
			t = at
		}
	}
	return t, true
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func benchPropagation(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "propagation")
	nodes := fs.Int("nodes", 10, "nodes on loopback (each a member)")
	adds := fs.Int("adds", 100, "adds to time (each followed later by its revoke)")
	gap := fs.Duration("gap", 50*time.Millisecond, "pause between two adds")
	fsync := fs.Bool("fsync", true, "fsync appends (as deployed; the disk of one machine is shared by all nodes)")
	fanout := fs.Int("push-fanout", node.DefaultConfig().PushFanout, "peers each node pushes a new checkpoint to (0: gossip alone, the anchor)")
	limit := fs.Duration("timeout", 15*time.Minute, "give up (with an error saying how far it got) after this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *limit)
	defer cancel()
	began := time.Now()
	// stopped says why the benchmark stops early: its time is up, or it was interrupted.
	stopped := func(what string, done, of int) error {
		return fmt.Errorf("propagation benchmark stopped after %v (-timeout %v) while %s: %d of %d measured: %w", time.Since(began).Round(time.Second), *limit, what, done, of, ctx.Err())
	}
	dir, err := os.MkdirTemp("", "hashfed-bench-prop-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ids, g := majority(*nodes, "m%03d")
	arr := &arrivals{seen: map[string]map[consortium.Signal]time.Time{}}
	var ns []*node.Node
	defer func() {
		// All at once: each Close waits for its gossip leave and its streams, which one after
		// another on a hundred nodes takes minutes.
		var wg sync.WaitGroup
		for _, n := range ns {
			wg.Go(func() { n.Close() })
		}
		wg.Wait()
	}()
	fmt.Fprintf(e.stdout, "starting %d nodes on loopback...\n", *nodes)
	for _, id := range ids {
		if ctx.Err() != nil {
			return stopped("starting nodes", len(ns), *nodes)
		}
		var join []string
		for _, n := range ns[max(0, len(ns)-3):] {
			join = append(join, n.GossipAddr())
		}
		n, err := localnet.Node(g, fixture.Key(id), dir, join, *fsync, func(c *node.Config) {
			c.MemberListen = ""
			c.PushFanout = *fanout
			c.Store.OnChange = arr.hook(id)
			if os.Getenv("HASHFED_TRACE") != "" {
				c.Logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			}
		})
		if err != nil {
			return err
		}
		ns = append(ns, n)
	}
	fmt.Fprintf(e.stdout, "started %d nodes in %v\n", *nodes, time.Since(began).Round(time.Millisecond))
	if !localnet.WaitUntil(60*time.Second, func() bool {
		if ctx.Err() != nil {
			return true
		}
		for _, n := range ns {
			if alive := len(n.Status().Peers); alive < *nodes-1 {
				return false
			}
		}
		return true
	}) {
		low, alive := *nodes, 0
		for _, n := range ns {
			st := n.Status()
			if len(st.Peers) < *nodes-1 {
				known := map[string]bool{}
				for _, p := range st.Peers {
					known[p.Member] = true
				}
				for _, id := range ids {
					if !known[id] && id != n.ID() {
						fmt.Fprintf(e.stderr, "%s does not know %s (gossip members %d)\n", n.ID(), id, n.GossipMembers())
					}
				}
			}
			low = min(low, len(st.Peers))
			for _, p := range st.Peers {
				if p.State == "alive" {
					alive++
				}
			}
		}
		fmt.Fprintf(e.stdout, "warning: the %d nodes did not all see each other within 60 s (fewest peers known: %d; alive links %d); measuring anyway\n", *nodes, low, alive)
	}
	time.Sleep(time.Second)
	author := ns[0]
	var addLat, revLat, submitLat []time.Duration
	missed := 0
	measure := func(kind consortium.ChangeKind, sig consortium.Signal, t0 time.Time) (time.Duration, bool) {
		var last time.Time
		ok := localnet.WaitUntil(10*time.Second, func() bool {
			var all bool
			last, all = arr.last(ids, kind, sig)
			return all || ctx.Err() != nil
		})
		ok = ok && ctx.Err() == nil
		return last.Sub(t0), ok
	}
	// One add first, not measured: the author signs nothing before its peers told it how long its
	// own log is (start-up, not propagation), and the first push dials each connection.
	warm := fixture.PDQ(999_999)
	if out, err := author.Submit(ctx, []*pb.Entry{fixture.Add(0, warm, "behaviour:threat-incitement")}); err != nil || out[0].Err != nil {
		return fmt.Errorf("submit: %v %v", err, out)
	}
	if !localnet.WaitUntil(60*time.Second, func() bool { _, all := arr.last(ids, consortium.Listed, warm); return all || ctx.Err() != nil }) || ctx.Err() != nil {
		if ctx.Err() != nil {
			return stopped("waiting for the warm-up add", 0, *adds)
		}
		h, _ := author.Store().Head(author.ID())
		var lacking []string
		for _, n := range ns {
			if n.Store().Size(author.ID()) == 0 {
				st := n.Status()
				alive, errs := 0, map[string]int{}
				for _, p := range st.Peers {
					if p.State == "alive" {
						alive++
					}
					if p.LastError != "" {
						errs[p.LastError]++
					}
				}
				known := uint64(0)
				for _, l := range st.Logs {
					if l.Member == author.ID() {
						known = l.KnownSize
					}
				}
				lacking = append(lacking, fmt.Sprintf("%s (gossip members %d, peers %d alive %d, known size %d, errors %v)", n.ID(), n.GossipMembers(), len(st.Peers), alive, known, errs))
			}
		}
		return fmt.Errorf("the warm-up add did not reach every node within 60 s (author's head %v; nodes without it: %s)", h != nil, strings.Join(lacking, ","))
	}
	stopProfile := profile()
	cpu0, wall0 := cpuTime(), time.Now()
	for i := 0; i < *adds; i++ {
		if ctx.Err() != nil {
			return stopped("measuring adds", len(addLat), *adds)
		}
		sig := fixture.PDQ(1_000_000 + i)
		t0 := time.Now()
		out, err := author.Submit(ctx, []*pb.Entry{fixture.Add(0, sig, "behaviour:threat-incitement")})
		if err != nil || out[0].Err != nil {
			return fmt.Errorf("submit: %v %v", err, out)
		}
		submitLat = append(submitLat, time.Since(t0))
		d, ok := measure(consortium.Listed, sig, t0)
		if os.Getenv("HASHFED_TRACE") != "" {
			var ts []time.Duration
			arr.mu.Lock()
			for _, id := range ids {
				if at, ok := arr.seen[id+"/listed"][sig]; ok {
					ts = append(ts, at.Sub(t0))
				}
			}
			arr.mu.Unlock()
			slices.Sort(ts)
			if len(ts) > 0 {
				fmt.Fprintf(e.stderr, "add %d: submit %v first %v median %v last %v\n", i, submitLat[len(submitLat)-1].Round(time.Millisecond), ts[0].Round(time.Millisecond), ts[len(ts)/2].Round(time.Millisecond), ts[len(ts)-1].Round(time.Millisecond))
			}
		}
		if !ok {
			missed++
			continue
		}
		addLat = append(addLat, d)
		time.Sleep(*gap)
	}
	for i := 0; i < *adds; i++ {
		if ctx.Err() != nil {
			return stopped("measuring revokes", len(revLat), *adds)
		}
		sig := fixture.PDQ(1_000_000 + i)
		t0 := time.Now()
		out, err := author.Submit(ctx, []*pb.Entry{fixture.RevokeSignal(0, sig)})
		if err != nil || out[0].Err != nil {
			return fmt.Errorf("submit: %v %v", err, out)
		}
		d, ok := measure(consortium.Unlisted, sig, t0)
		if !ok {
			missed++
			continue
		}
		revLat = append(revLat, d)
		time.Sleep(*gap)
	}
	stopProfile()
	if os.Getenv("HASHFED_TRACE") != "" {
		pushStats(e, ns)
	}
	cpu := cpuTime() - cpu0
	wall := time.Since(wall0)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	fmt.Fprintf(e.stdout, "add → matchable on all %d nodes: p50 %.0f ms, p90 %.0f ms, p99 %.0f ms, max %.0f ms (%d adds)\n", *nodes, ms(percentile(addLat, .5)), ms(percentile(addLat, .9)), ms(percentile(addLat, .99)), ms(percentile(addLat, 1)), len(addLat))
	fmt.Fprintf(e.stdout, "revoke → gone on all %d nodes: p50 %.0f ms, p90 %.0f ms, p99 %.0f ms, max %.0f ms (%d revokes)\n", *nodes, ms(percentile(revLat, .5)), ms(percentile(revLat, .9)), ms(percentile(revLat, .99)), ms(percentile(revLat, 1)), len(revLat))
	fmt.Fprintf(e.stdout, "nodes=%d push_fanout=%d fsync=%v adds=%d add_p50_ms=%.0f add_p99_ms=%.0f add_max_ms=%.0f revoke_p50_ms=%.0f revoke_p99_ms=%.0f missed=%d cpu_ms_per_change=%.0f cpu_cores=%.2f rss_mb=%.0f\n",
		*nodes, *fanout, *fsync, *adds, ms(percentile(addLat, .5)), ms(percentile(addLat, .99)), ms(percentile(addLat, 1)), ms(percentile(revLat, .5)), ms(percentile(revLat, .99)), missed, ms(cpu)/float64(2**adds), cpu.Seconds()/wall.Seconds(), peakRSS())
	if missed > 0 {
		return fmt.Errorf("%d changes did not reach every node within 10 s", missed)
	}
	return nil
}

func benchBootstrap(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bootstrap")
	logs := fs.Int("logs", 20, "member logs")
	per := fs.Int("per", 100_000, "entries per log")
	peers := fs.Int("peers", 3, "peers that hold the logs")
	sync := fs.Bool("fsync", true, "the bootstrapping node fsyncs each stored chunk")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *peers+1 > *logs {
		return usageErr("need more logs than peers")
	}
	dir, err := os.MkdirTemp("", "hashfed-bench-boot-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ids, g := majority(*logs, "m%02d")
	total := *logs * *per
	fmt.Fprintf(e.stdout, "building %d logs of %d entries and %d peers holding them...\n", *logs, *per, *peers)
	type signedLog struct {
		entries [][]byte
		cp      *consortium.Checkpoint
	}
	all := map[string]signedLog{}
	for k, id := range ids {
		es := benchEntries(id, *per, k**per)
		all[id] = signedLog{es, signedLogCheckpoint(g, id, es)}
	}
	// The peers' stores are filled directly, then their nodes start.
	var ns []*node.Node
	defer func() {
		for _, n := range ns {
			n.Close()
		}
	}()
	for p := 0; p < *peers; p++ {
		id := ids[p]
		o := store.DefaultOptions()
		o.NoSync = true
		if err := os.MkdirAll(filepath.Join(dir, id), 0o700); err != nil {
			return err
		}
		st, err := store.Open(filepath.Join(dir, id, "hashfed.db"), g, o)
		if err != nil {
			return err
		}
		for _, lid := range ids {
			l := all[lid]
			if err := st.AppendRange(l.cp, 0, l.entries, nil); err != nil {
				return err
			}
		}
		st.Close()
		var join []string
		for _, n := range ns {
			join = append(join, n.GossipAddr())
		}
		n, err := localnet.Node(g, fixture.Key(id), dir, join, false, func(c *node.Config) { c.MemberListen = "" })
		if err != nil {
			return err
		}
		ns = append(ns, n)
	}
	all = nil
	var join []string
	for _, n := range ns {
		join = append(join, n.GossipAddr())
	}
	fresh := ids[*peers]
	fmt.Fprintf(e.stdout, "%s joins with an empty store...\n", fresh)
	start := time.Now()
	n, err := localnet.Node(g, fixture.Key(fresh), dir, join, *sync, func(c *node.Config) { c.MemberListen = "" })
	if err != nil {
		return err
	}
	ns = append(ns, n)
	ok := localnet.WaitUntil(10*time.Minute, func() bool {
		got := 0
		for _, s := range n.Store().Sizes() {
			got += int(s)
		}
		return got == total
	})
	d := time.Since(start)
	if !ok {
		return fmt.Errorf("bootstrap incomplete after %v: %v", d, n.Store().Sizes())
	}
	var sig, lst int
	n.Store().View(func(s *consortium.State) { sig, lst = s.Counts() })
	if lst != total {
		return fmt.Errorf("bootstrapped state has %d listings, want %d", lst, total)
	}
	ms, err := n.Store().MatchSignal(signalOf(benchEntries(ids[*logs-1], 1, (*logs-1)**per)[0]), store.DefaultQuery())
	if err != nil || len(ms) != 1 {
		return fmt.Errorf("bootstrapped node does not match: %v %v", ms, err)
	}
	rate := float64(total) / d.Seconds()
	sources := []string{}
	for _, p := range n.Status().Peers {
		sources = append(sources, p.Member)
	}
	fmt.Fprintf(e.stdout, "bootstrapped %d entries (%d logs from peers %s) in %v: verified, stored (fsync %v), applied, indexed; %d signals\n", total, *logs, strings.Join(sources, ","), d.Round(time.Millisecond), *sync, sig)
	fmt.Fprintf(e.stdout, "entries=%d logs=%d peers=%d seconds=%.2f entries_per_s=%.0f rss_mb=%.0f\n", total, *logs, *peers, d.Seconds(), rate, peakRSS())
	return nil
}

// signedLogCheckpoint signs a checkpoint over entries of member's log.
func signedLogCheckpoint(g *consortium.Genesis, member string, entries [][]byte) *consortium.Checkpoint {
	return signedLog(g, member, entries)
}

func signalOf(entry []byte) consortium.Signal {
	e, _ := consortium.ParseEntry(entry)
	s, _ := consortium.SignalFromProto(e.GetAdd().GetSignal())
	return s
}

func benchCatchup(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "catchup")
	count := fs.Int("n", 100_000, "entries added while the node is down")
	sync := fs.Bool("fsync", true, "fsync appends")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "hashfed-bench-catchup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ids := []string{"alpha", "bravo", "charlie"}
	g := fixture.Genesis(2, fixture.Members(ids...)...)
	start := func(id string, join []string) (*node.Node, error) {
		return localnet.Node(g, fixture.Key(id), dir, join, *sync, func(c *node.Config) { c.MemberListen = "" })
	}
	a, err := start("alpha", nil)
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := start("bravo", []string{a.GossipAddr()})
	if err != nil {
		return err
	}
	defer b.Close()
	c, err := start("charlie", []string{a.GossipAddr()})
	if err != nil {
		return err
	}
	if _, err := a.Submit(ctx, []*pb.Entry{fixture.Add(0, fixture.PDQ(0))}); err != nil {
		return err
	}
	if !localnet.WaitUntil(10*time.Second, func() bool { return c.Store().Size("alpha") == 1 }) {
		return fmt.Errorf("charlie did not replicate the first entry")
	}
	c.Close()
	fmt.Fprintf(e.stdout, "charlie is down; alpha adds %d entries...\n", *count)
	for i := 0; i < *count; i += 10_000 {
		var es []*pb.Entry
		for j := i; j < min(i+10_000, *count); j++ {
			es = append(es, fixture.Add(0, fixture.PDQ(1+j), "behaviour:threat-incitement"))
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
	want := uint64(*count + 1)
	if !localnet.WaitUntil(30*time.Second, func() bool { h, ok := a.Store().Head("alpha"); return ok && h.Size == want }) {
		return fmt.Errorf("alpha did not sign its log")
	}
	t0 := time.Now()
	c, err = start("charlie", []string{a.GossipAddr(), b.GossipAddr()})
	if err != nil {
		return err
	}
	defer c.Close()
	ok := localnet.WaitUntil(60*time.Second, func() bool { return c.Store().Size("alpha") == want })
	d := time.Since(t0)
	if !ok {
		return fmt.Errorf("charlie not current after %v: %d of %d", d, c.Store().Size("alpha"), want)
	}
	ms, err := c.Store().MatchSignal(fixture.PDQ(*count), store.DefaultQuery())
	if err != nil || len(ms) != 1 {
		return fmt.Errorf("charlie does not match the last add: %v %v", ms, err)
	}
	fmt.Fprintf(e.stdout, "charlie was current %v after it restarted (store opened, rejoined, %d entries fetched, verified, stored, applied)\n", d.Round(time.Millisecond), *count)
	fmt.Fprintf(e.stdout, "missed=%d seconds=%.2f entries_per_s=%.0f\n", *count, d.Seconds(), float64(*count)/d.Seconds())
	return nil
}

// pushStats prints, summed over nodes, the push counters and the mean and approximate p90 of each
// propagation stage (hashfed_push_stage_seconds).
func pushStats(e *env, ns []*node.Node) {
	type hist struct {
		count  uint64
		sum    float64
		bounds []float64
		cum    []uint64
	}
	stages := map[string]*hist{}
	counts := map[string]float64{}
	for _, n := range ns {
		fams, err := n.Metrics().Gather()
		if err != nil {
			continue
		}
		for _, f := range fams {
			switch f.GetName() {
			case "hashfed_push_stage_seconds":
				for _, m := range f.Metric {
					st := m.Label[0].GetValue()
					h := stages[st]
					hg := m.GetHistogram()
					if h == nil {
						h = &hist{}
						for _, b := range hg.Bucket {
							h.bounds = append(h.bounds, b.GetUpperBound())
						}
						h.cum = make([]uint64, len(h.bounds))
						stages[st] = h
					}
					h.count += hg.GetSampleCount()
					h.sum += hg.GetSampleSum()
					for i, b := range hg.Bucket {
						h.cum[i] += b.GetCumulativeCount()
					}
				}
			case "hashfed_push_sent_total", "hashfed_push_received_total":
				for _, m := range f.Metric {
					counts[strings.TrimSuffix(strings.TrimPrefix(f.GetName(), "hashfed_push_"), "_total")+"/"+m.Label[0].GetValue()] += m.GetCounter().GetValue()
				}
			case "hashfed_replication_entries_total", "hashfed_gossip_messages_total":
				for _, m := range f.Metric {
					k := f.GetName()
					for _, l := range m.Label {
						k += "/" + l.GetValue()
					}
					counts[k] += m.GetCounter().GetValue()
				}
			}
		}
	}
	for _, st := range slices.Sorted(maps.Keys(stages)) {
		h := stages[st]
		p90 := "inf"
		for i, c := range h.cum {
			if float64(c) >= 0.9*float64(h.count) {
				p90 = fmt.Sprintf("%.1f", h.bounds[i]*1000)
				break
			}
		}
		fmt.Fprintf(e.stderr, "stage %-9s n=%6d mean %.1f ms, p90 ≤ %s ms\n", st, h.count, h.sum/float64(max(h.count, 1))*1000, p90)
	}
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		fmt.Fprintf(e.stderr, "%s %.0f\n", k, counts[k])
	}
}
