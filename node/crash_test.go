package node

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/fixture"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"github.com/hashfed/hashfed/store"
)

const crashNodeEnv = "HASHFED_CRASH_NODE"

func crashGenesis() *consortium.Genesis {
	return fixture.Genesis(2, fixture.Members("alpha", "bravo")...)
}

// TestCrashNodeChild is the child process of TestCrashLoop: node bravo, fsync on, joined to the
// parent's node alpha. In mode "ingest" it submits its own adds in a loop, printing each
// acknowledged entry; meanwhile it replicates alpha's log. In mode "converge" it only replicates,
// printing its state digest every 100 ms.
func TestCrashNodeChild(t *testing.T) {
	dir := os.Getenv(crashNodeEnv)
	if dir == "" {
		t.Skip("run by TestCrashLoop")
	}
	cfg := DefaultConfig()
	cfg.Genesis, cfg.Key, cfg.DataDir = crashGenesis(), fixture.Key("bravo"), dir
	cfg.PeerListen, cfg.GossipListen, cfg.MemberListen, cfg.HTTPListen = "127.0.0.1:0", "127.0.0.1:0", "", ""
	cfg.Join = []string{os.Getenv(crashNodeEnv + "_JOIN")}
	cfg.CheckpointInterval, cfg.AntiEntropyInterval, cfg.GossipInterval = 20*time.Millisecond, 200*time.Millisecond, 50*time.Millisecond
	n, err := New(cfg)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(3)
	}
	if err := n.Start(); err != nil {
		fmt.Println("error:", err)
		os.Exit(3)
	}
	out := bufio.NewWriter(os.Stdout)
	seed, _ := strconv.Atoi(os.Getenv(crashNodeEnv + "_SEED"))
	r := rand.New(rand.NewPCG(uint64(seed), 9))
	for {
		if os.Getenv(crashNodeEnv+"_MODE") == "converge" {
			d := digestOf(n)
			fmt.Fprintf(out, "digest %x\n", d[:])
			out.Flush()
			time.Sleep(100 * time.Millisecond)
			continue
		}
		var es []*pb.Entry
		for range 1 + r.IntN(30) {
			es = append(es, fixture.Add(0, fixture.PDQ(r.IntN(1<<30)), "behaviour:threat-incitement"))
		}
		res, err := n.Submit(t.Context(), es)
		if err != nil {
			fmt.Fprintln(out, "error:", err)
			out.Flush()
			os.Exit(4)
		}
		for _, a := range res {
			if a.Err == nil {
				h := consortium.LeafHash(a.Entry)
				fmt.Fprintf(out, "ack %d %s\n", a.Index, hex.EncodeToString(h[:]))
			}
		}
		out.Flush()
		time.Sleep(2 * time.Millisecond)
	}
}

// TestCrashLoop kills node bravo, running in a separate process, with SIGKILL at random moments
// while it ingests its own entries and replicates alpha's (at least 50 kills). After each kill its
// store must open, hold every acknowledged entry, verify against every checkpoint, and rebuild the
// same state as a replay from scratch; at the end bravo and alpha converge.
func TestCrashLoop(t *testing.T) {
	kills := 50
	if testing.Short() {
		kills = 8
	}
	g := crashGenesis()
	c := &cluster{t: t, g: g, dir: t.TempDir(), nodes: map[string]*Node{}, part: &partition{}}
	a := c.start("alpha")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // alpha writes all along
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			a.Submit(t.Context(), []*pb.Entry{fixture.Add(0, fixture.PDQ(10_000_000+i))})
		}
	}()
	dir := filepath.Join(c.dir, "bravo")
	// The first kill can come before the child has made its data directory; the store is then
	// created here, empty, as the child would have.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	acked := map[uint64]string{}
	r := rand.New(rand.NewPCG(5, 6))
	run := func(mode string, seed int, until func(line string) bool, maxRun time.Duration) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashNodeChild$")
		cmd.Env = append(os.Environ(), crashNodeEnv+"="+dir, crashNodeEnv+"_JOIN="+a.GossipAddr(),
			crashNodeEnv+"_MODE="+mode, fmt.Sprintf("%s_SEED=%d", crashNodeEnv, seed))
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 4096)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		deadline := time.After(maxRun)
	loop:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break loop
				}
				if strings.HasPrefix(l, "error:") {
					t.Errorf("child: %s", l)
				}
				if f := strings.Fields(l); len(f) == 3 && f[0] == "ack" && len(f[2]) == 64 {
					i, _ := strconv.ParseUint(f[1], 10, 64)
					acked[i] = f[2]
				}
				if until(l) {
					break loop
				}
			case <-deadline:
				break loop
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		for l := range lines {
			if f := strings.Fields(l); len(f) == 3 && f[0] == "ack" && len(f[2]) == 64 {
				i, _ := strconv.ParseUint(f[1], 10, 64)
				acked[i] = f[2]
			}
		}
		cmd.Wait()
	}
	for k := range kills {
		started := false
		run("ingest", k, func(l string) bool {
			if strings.HasPrefix(l, "ack") && !started {
				started = true
			}
			return false
		}, time.Duration(100+r.IntN(400))*time.Millisecond)
		st, err := store.Open(filepath.Join(dir, "hashfed.db"), g, store.DefaultOptions())
		if err != nil {
			t.Fatalf("kill %d: store does not open: %v", k, err)
		}
		n := st.Size("bravo")
		for i, want := range acked {
			if i >= n {
				t.Fatalf("kill %d: acknowledged entry %d of bravo lost (log has %d)", k, i, n)
			}
			e, _ := st.Entry("bravo", i)
			if h := consortium.LeafHash(e); hex.EncodeToString(h[:]) != want {
				pe, _ := consortium.ParseEntry(e)
				t.Fatalf("kill %d: entry %d differs from the acknowledged one (stored: %v; log size %d, acked %d)", k, i, pe, n, len(acked))
			}
		}
		for m, head := range st.Heads() {
			es, err := st.Entries(m, 0, head.Size, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := consortium.VerifyRange(consortium.NewTree(), es, head); err != nil {
				t.Fatalf("kill %d: log %s does not verify against its checkpoint: %v", k, m, err)
			}
		}
		var got consortium.Hash
		st.View(func(s *consortium.State) { got = s.Digest() })
		logs := consortium.Logs{}
		for m, sz := range st.Sizes() {
			logs[m], _ = st.Entries(m, 0, sz, 1<<30)
		}
		replayed, _ := consortium.Replay(g, logs, consortium.ReplayOptions{})
		if replayed.Digest() != got {
			t.Fatalf("kill %d: state rebuilt on open differs from a replay from scratch", k)
		}
		st.Close()
	}
	close(stop)
	<-done
	// Once alpha stops writing, bravo (restarted) and alpha reach one state.
	want := ""
	converged := false
	run("converge", kills, func(l string) bool {
		d := digestOf(a)
		want = hex.EncodeToString(d[:])
		if l == "digest "+want {
			converged = true
			return true
		}
		return false
	}, 30*time.Second)
	if !converged {
		st, err := store.Open(filepath.Join(dir, "hashfed.db"), g, store.DefaultOptions())
		if err == nil {
			t.Logf("bravo holds %v, heads %d; alpha holds %v", st.Sizes(), len(st.Heads()), a.store.Sizes())
			st.Close()
		}
		t.Fatalf("bravo did not converge with alpha after the last restart (alpha %s)", want)
	}
	t.Logf("%d kills; %d of bravo's entries acknowledged, all present; alpha's log %d entries; converged", kills, len(acked), a.store.Size("alpha"))
}
