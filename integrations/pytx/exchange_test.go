// Package pytx_test runs the python-threatexchange exchange's node client (integrations/pytx,
// standard-library Python) against a running loopback node: Debian's /usr/bin/python3, no pytx.
package pytx_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/consortium/hashlist"
	"github.com/hashfed/hashfed/internal/fixture"
	"github.com/hashfed/hashfed/node"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

const python = "/usr/bin/python3"

const token = "pytx-test-token"

func startNode(t *testing.T) *node.Node {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.Genesis = fixture.Genesis(1, fixture.Founder{ID: "alpha"}, fixture.Founder{ID: "beta"})
	cfg.Key = fixture.Key("alpha")
	cfg.DataDir = t.TempDir()
	cfg.PeerListen, cfg.GossipListen, cfg.MemberListen, cfg.HTTPListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.MemberToken = token
	cfg.CheckpointInterval = 20 * time.Millisecond
	cfg.Store.NoSync = true
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// exportTE is what `hashfed export --format te` prints, sorted: the member API's Export written
// by hashlist's te writer.
func exportTE(t *testing.T, ctx context.Context, n *node.Node) []string {
	t.Helper()
	conn, err := grpc.NewClient(n.MemberAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	stream, err := pb.NewMemberServiceClient(conn).Export(ctx, &pb.ExportRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, _ := hashlist.NewWriter(&buf, hashlist.TE)
	for {
		rec, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sig, err := consortium.SignalFromProto(rec.Signal)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(hashlist.Record{Type: sig.Type.String(), Value: sig.Text()}); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if lines[0] == "" {
		lines = nil
	}
	slices.Sort(lines)
	return lines
}

// signal returns the i-th test signal, cycling through every type.
func signal(t *testing.T, i int) consortium.Signal {
	t.Helper()
	var sig consortium.Signal
	var err error
	switch i % 4 {
	case 0:
		return fixture.PDQ(i)
	case 1:
		return fixture.MD5(i)
	case 2:
		sum := sha256.Sum256(fmt.Appendf(nil, "file %d", i))
		sig, err = consortium.ParseSignal("sha256", hex.EncodeToString(sum[:]))
	case 3:
		sig, err = consortium.ParseSignal("url", fmt.Sprintf("https://example.org/item/%d", i))
	}
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func submit(t *testing.T, ctx context.Context, n *node.Node, es ...*pb.Entry) {
	t.Helper()
	for _, e := range es {
		e.TimeUnixMs = 0 // the node stamps it
	}
	out, err := n.Submit(ctx, es)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range out {
		if a.Err != nil {
			t.Fatalf("entry %d refused: %v", i, a.Err)
		}
	}
}

func pythonEnv(t *testing.T) []string {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		t.Skipf("%s is absent (Debian's python3 runs the pytx exchange's tests): %v", python, err)
	}
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	return append(os.Environ(), "PYTHONPATH="+dir, "PYTHONDONTWRITEBYTECODE=1")
}

// TestFetchResume fetches the node's set with the exchange's node client, killed at random points
// and resumed from its stored checkpoint, while the set changes between rounds (adds, revokes,
// opinions, re-adds): after each round the fetched set must equal `hashfed export` exactly.
func TestFetchResume(t *testing.T) {
	env := pythonEnv(t)
	ctx := t.Context()
	n := startNode(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state.json")
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	rng := rand.New(rand.NewPCG(1, 2))
	listed := map[int]bool{}
	next := 0
	kills := 0
	for round := range 4 {
		// Change the set: add new signals, revoke some listed ones, give opinions, re-add one.
		var es []*pb.Entry
		for range 20 + rng.IntN(20) {
			es = append(es, fixture.Add(0, signal(t, next), "lang:en"))
			listed[next] = true
			next++
		}
		for i := range next {
			if listed[i] && rng.IntN(4) == 0 {
				es = append(es, fixture.RevokeSignal(0, signal(t, i)))
				delete(listed, i)
			} else if listed[i] && rng.IntN(8) == 0 {
				// Only on listed signals: the node refuses an opinion on one nobody lists.
				es = append(es, fixture.Opinion(0, signal(t, i), pb.Stance_STANCE_AGREE))
			}
		}
		submit(t, ctx, n, es...)
		if round == 2 {
			for i := range next {
				if !listed[i] {
					submit(t, ctx, n, fixture.Add(0, signal(t, i), "lang:fr"))
					listed[i] = true
					break
				}
			}
		}

		var out []byte
		for attempt := 0; ; attempt++ {
			if attempt > 200 {
				t.Fatal("the fetch never completed")
			}
			args := []string{"-m", "hashfed_pytx.fetch", "--url", "http://" + n.HTTPAddr(), "--state", state, "--token-file", tokenFile, "--page-size", "7"}
			if attempt < 3 {
				args = append(args, "--die-after", fmt.Sprint(1+rng.IntN(30)))
			}
			cmd := exec.CommandContext(ctx, python, args...)
			cmd.Env = env
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			o, err := cmd.Output()
			var ee *exec.ExitError
			if errors.As(err, &ee) && ee.ExitCode() == 3 {
				kills++
				continue // killed mid-fetch: resume from the stored checkpoint
			}
			if err != nil {
				t.Fatalf("fetch: %v\n%s", err, stderr.String())
			}
			out = o
			break
		}
		got := strings.Split(strings.TrimSpace(string(out)), "\n")
		if got[0] == "" {
			got = nil
		}
		want := exportTE(t, ctx, n)
		if len(want) != len(listed) {
			t.Fatalf("round %d: export has %d signals, the test listed %d", round, len(want), len(listed))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: fetched set differs from hashfed export\ngot  %d: %q\nwant %d: %q", round, len(got), got, len(want), want)
		}
	}
	if kills == 0 {
		t.Fatal("no fetch was interrupted: the test did not test resuming")
	}
}

// TestReportOpinion writes an opinion through the exchange's node client and reads it back.
func TestReportOpinion(t *testing.T) {
	env := pythonEnv(t)
	ctx := t.Context()
	n := startNode(t)
	md5 := fixture.MD5(7)
	submit(t, ctx, n, fixture.Add(0, md5))
	script := fmt.Sprintf(`
from hashfed_pytx.node import NodeClient, HashfedError
c = NodeClient("http://%s", token=%q, retries=0)
print(c.report_opinion("video_md5", %q, "false_positive", "not ours"))
try:
    c.report_opinion("video_md5", "zz", "false_positive")
except HashfedError as e:
    print("refused:", e)
try:
    NodeClient("http://%s", token="wrong", retries=0).feed_page("")
except HashfedError as e:
    print("refused:", e)
`, n.HTTPAddr(), token, md5.Text(), n.HTTPAddr())
	cmd := exec.CommandContext(ctx, python, "-c", script)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 3 || lines[0] != "1" ||
		!strings.Contains(lines[1], "400") || !strings.Contains(lines[1], "md5 value") ||
		!strings.Contains(lines[2], "401") {
		t.Fatalf("got %q, want index 1, a 400 naming the bad md5 and a 401", lines)
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+n.HTTPAddr()+"/v1/lookup?type=md5&value="+md5.Text(), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Result node.MatchJSON `json:"result"`
	}
	json.NewDecoder(resp.Body).Decode(&got)
	if ops := got.Result.Opinions; len(ops) != 1 || ops[0].Author != "alpha" || ops[0].Stance != "false_positive" || ops[0].Text != "not ours" {
		t.Errorf("got opinions %+v, want alpha's false_positive \"not ours\"", ops)
	}
}

// TestWithPytx runs the exchange class itself through python-threatexchange 1.2.16's merge and
// conversion (check_with_pytx.py), when pytx is importable: installed, or its source named by
// HASHFED_PYTX_SRC (the python-threatexchange directory of facebook/ThreatExchange). pytx indexes
// every exported signal but the hashed URLs, which it has no type for.
func TestWithPytx(t *testing.T) {
	env := pythonEnv(t)
	if src := os.Getenv("HASHFED_PYTX_SRC"); src != "" {
		env = append(env, "PYTHONPATH="+strings.TrimPrefix(env[len(env)-2], "PYTHONPATH=")+string(os.PathListSeparator)+src)
	}
	probe := exec.CommandContext(t.Context(), python, "-c", "import threatexchange.exchanges.auth, threatexchange.signal_type.pdq.signal, threatexchange.signal_type.md5, threatexchange.signal_type.sha256, threatexchange.signal_type.url")
	probe.Env = env
	if out, err := probe.CombinedOutput(); err != nil {
		t.Skipf("python-threatexchange is not importable (pip install threatexchange==1.2.16, or set HASHFED_PYTX_SRC): %s", bytes.TrimSpace(out))
	}
	ctx := t.Context()
	n := startNode(t)
	var es []*pb.Entry
	for i := range 23 {
		es = append(es, fixture.Add(0, signal(t, i), "lang:en"))
	}
	es = append(es, fixture.RevokeSignal(0, signal(t, 4)), fixture.RevokeSignal(0, signal(t, 5)))
	submit(t, ctx, n, es...)
	md5 := signal(t, 1)
	cmd := exec.CommandContext(ctx, python, "check_with_pytx.py", "http://"+n.HTTPAddr(), token, md5.Text())
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var want []string
	for _, l := range exportTE(t, ctx, n) {
		if !strings.HasPrefix(l, hashlist.HashedURLType+" ") {
			want = append(want, l)
		}
	}
	want = append(want, "opinion written")
	if got := strings.Split(strings.TrimSpace(string(out)), "\n"); !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}
