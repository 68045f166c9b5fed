package store_test

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

const crashEnv = "HASHFED_CRASH_STORE"

// TestCrashChild is the child of TestCrashRecovery: it appends to the store named by the
// environment until it is killed, printing each acknowledged entry ("ack member index leafhash")
// after the append returned.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("run by TestCrashRecovery")
	}
	g := fixture.Genesis(2, founders...)
	o := store.DefaultOptions() // fsync on: acknowledged means durable
	s, err := store.Open(path, g, o)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	out := bufio.NewWriter(os.Stdout)
	seed, _ := strconv.Atoi(os.Getenv(crashEnv + "_SEED"))
	r := rand.New(rand.NewPCG(uint64(seed), 1))
	peer := peerLog(g, "bravo", 4000, 1_000_000)
	for n := 0; ; n++ {
		if n%7 == 3 {
			// A range of bravo's log, as replication stores it.
			start := s.Size("bravo")
			end := min(start+uint64(1+r.IntN(200)), uint64(len(peer.Entries)))
			if start < end {
				part := fixture.NewLog(g.ID, fixture.Key("bravo"))
				for _, e := range peer.Entries[:end] {
					part.AppendRaw(e)
				}
				cp, err := consortium.OpenCheckpoint(g.ID, g, part.Checkpoint())
				if err == nil {
					err = s.AppendRange(cp, start, peer.Entries[start:end], nil)
				}
				if err != nil {
					fmt.Fprintln(out, "error:", err)
					out.Flush()
					os.Exit(4)
				}
				for i := start; i < end; i++ {
					fmt.Fprintf(out, "ack bravo %d %x\n", i, leaf(peer.Entries[i]))
				}
				out.Flush()
			}
			continue
		}
		var es []*pb.Entry
		size := s.Size("alpha")
		for i := 0; i < 1+r.IntN(40); i++ {
			if size > 0 && r.IntN(8) == 0 {
				es = append(es, fixture.RevokeIndex(0, uint64(r.IntN(int(size)))))
			} else {
				es = append(es, fixture.Add(0, fixture.PDQ(r.IntN(1<<30)), "behaviour:threat-incitement"))
			}
		}
		res, err := s.Submit(t.Context(), "alpha", es)
		if err != nil {
			fmt.Fprintln(out, "error:", err)
			out.Flush()
			os.Exit(4)
		}
		for _, a := range res {
			if a.Err == nil {
				fmt.Fprintf(out, "ack alpha %d %x\n", a.Index, leaf(a.Entry))
			}
		}
		out.Flush()
		if n%5 == 0 {
			if _, err := s.SignHead(fixture.Key("alpha")); err != nil {
				fmt.Fprintln(out, "error:", err)
				out.Flush()
				os.Exit(4)
			}
		}
	}
}

func leaf(e []byte) []byte { h := consortium.LeafHash(e); return h[:] }

// TestCrashRecovery kills a child process that appends to a store (its own submissions and verified
// ranges, fsynced) at random moments, and after every kill checks that the store opens, that every
// acknowledged entry is there, that every log verifies against its checkpoint, and that the state
// rebuilt on open equals a replay from scratch.
func TestCrashRecovery(t *testing.T) {
	kills := 24
	if testing.Short() {
		kills = 6
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	g := fixture.Genesis(2, founders...)
	acked := map[string]map[uint64]string{"alpha": {}, "bravo": {}}
	r := rand.New(rand.NewPCG(42, 42))
	for k := 0; k < kills; k++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v=false")
		cmd.Env = append(os.Environ(), crashEnv+"="+path, fmt.Sprintf("%s_SEED=%d", crashEnv, k))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Let it run until it has acknowledged something, then a random while longer.
		deadline := time.After(time.Duration(30+r.IntN(250)) * time.Millisecond)
		started := false
	run:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break run
				}
				record(t, acked, l)
				started = true
			case <-deadline:
				if started {
					break run
				}
				deadline = time.After(20 * time.Millisecond)
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		for l := range lines {
			record(t, acked, l)
		}
		cmd.Wait()

		s, err := store.Open(path, g, testOptions())
		if err != nil {
			t.Fatalf("kill %d: open after crash: %v", k, err)
		}
		for m, idx := range acked {
			n := s.Size(m)
			for i, want := range idx {
				if i >= n {
					t.Fatalf("kill %d: acknowledged entry %d of %s lost (log has %d)", k, i, m, n)
				}
				e, err := s.Entry(m, i)
				if err != nil || hex.EncodeToString(leaf(e)) != want {
					t.Fatalf("kill %d: entry %d of %s differs from the acknowledged one (%v)", k, i, m, err)
				}
			}
			if head, ok := s.Head(m); ok {
				es, err := s.Entries(m, 0, head.Size, 1<<30)
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := consortium.VerifyRange(consortium.NewTree(), es, head); err != nil {
					t.Fatalf("kill %d: log %s does not verify against its checkpoint: %v", k, m, err)
				}
			}
		}
		if got, want := digest(s), replayDigest(t, s); got != want {
			t.Fatalf("kill %d: state rebuilt on open differs from a replay from scratch", k)
		}
		s.Close()
	}
	t.Logf("%d kills; %d entries of alpha and %d of bravo acknowledged, all present", kills, len(acked["alpha"]), len(acked["bravo"]))
}

func record(t *testing.T, acked map[string]map[uint64]string, line string) {
	f := strings.Fields(line)
	// The last line may be cut short by the kill: only whole acknowledgements count.
	if len(f) == 4 && f[0] == "ack" && len(f[3]) == 64 {
		i, _ := strconv.ParseUint(f[2], 10, 64)
		acked[f[1]][i] = f[3]
		return
	}
	if strings.HasPrefix(line, "error:") || strings.HasPrefix(line, "open:") {
		t.Errorf("child: %s", line)
	}
}
