package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/node"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// The demo's images, under --images (the repository's PDQ test images): alpha lists the first
// ones; bravo matches an edited copy (the bridge photo squashed to a square, 8 bits from the
// original's PDQ hash).
var (
	demoImages = []string{
		"pdq/data/bridge-mods/aaa-orig.jpg",
		"pdq/data/misc-images/wee.jpg",
		"pdq/data/reg-test-input/labelme-subset/q0291.jpg",
		"pdq/data/reg-test-input/labelme-subset/q1050.jpg",
		"pdq/data/reg-test-input/labelme-subset/q2821.jpg",
		"python-threatexchange/threatexchange/tests/hashing/resources/rgb.jpeg",
	}
	demoEdited = "pdq/data/bridge-mods/square-512x512.jpg"
)

// demo is the state of a running demo.
type demo struct {
	ctx   context.Context
	e     *env
	dir   string
	g     *consortium.Genesis
	keys  map[string]*consortium.PrivateKey
	nodes map[string]*node.Node
	start time.Time
	steps int
}

func runDemo(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "demo", "[--dir DIR] [--images DIR]")
	dir := fs.String("dir", "", "where the demo consortium lives (default a temporary directory, removed afterwards)")
	images := fs.String("images", filepath.Join("testdata", "pdq", "images"), "the sample images (the repository's testdata/pdq/images)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	for _, p := range append(append([]string{}, demoImages...), demoEdited) {
		if _, err := os.Stat(filepath.Join(*images, p)); err != nil {
			return fmt.Errorf("sample image %s missing: run hashfed demo from the repository root, or pass --images (%v)", p, err)
		}
	}
	d := &demo{ctx: ctx, e: e, dir: *dir, keys: map[string]*consortium.PrivateKey{}, nodes: map[string]*node.Node{}, start: time.Now()}
	if d.dir == "" {
		tmp, err := os.MkdirTemp("", "hashfed-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		d.dir = tmp
	}
	defer func() {
		for _, n := range d.nodes {
			n.Close()
		}
	}()
	fmt.Fprintf(e.stdout, "hashfed demo: a consortium of three platforms on loopback, in %s\n\n", d.dir)
	err := d.run(*images)
	total := time.Since(d.start).Round(time.Millisecond)
	if err != nil {
		fmt.Fprintf(e.stdout, "\ndemo FAILED after %d steps and %v: %v\n", d.steps, total, err)
		return errSilent
	}
	fmt.Fprintf(e.stdout, "\ndemo OK: %d steps in %v\n", d.steps, total)
	return nil
}

// step runs one step of the story, printing what it did and how long it took.
func (d *demo) step(title string, fn func() (string, error)) error {
	t := time.Now()
	detail, err := fn()
	d.steps++
	mark := "ok  "
	if err != nil {
		mark = "FAIL"
	}
	fmt.Fprintf(d.e.stdout, "[%s] %2d. %-62s %7.0f ms\n", mark, d.steps, title, float64(time.Since(t).Microseconds())/1000)
	if detail != "" {
		for _, l := range strings.Split(strings.TrimRight(detail, "\n"), "\n") {
			fmt.Fprintf(d.e.stdout, "          %s\n", l)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", title, err)
	}
	return nil
}

// client dials a demo node's member API as the CLI does.
func (d *demo) client(id string) (*client, error) {
	nf := &nodeFlags{addr: d.nodes[id].MemberAddr(), timeout: 10 * time.Second}
	return nf.dial()
}

func (d *demo) submit(id string, es []*pb.Entry) ([]*pb.SubmitResult, error) {
	c, err := d.client(id)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx, cancel := c.ctx(d.ctx, 10*time.Second)
	defer cancel()
	resp, err := c.Submit(ctx, &pb.SubmitRequest{Entries: es})
	if err != nil {
		return nil, c.callErr(err)
	}
	for _, r := range resp.Results {
		if r.Error != "" {
			return nil, errors.New(r.Error)
		}
	}
	return resp.Results, nil
}

func (d *demo) match(id string, sig consortium.Signal, quality int) ([]*pb.MatchResult, error) {
	c, err := d.client(id)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx, cancel := c.ctx(d.ctx, 10*time.Second)
	defer cancel()
	req := &pb.MatchRequest{Signal: sig.Proto()}
	if quality >= 0 {
		q := uint32(quality)
		req.Quality = &q
	}
	resp, err := c.Match(ctx, req)
	if err != nil {
		return nil, c.callErr(err)
	}
	return resp.Matches, nil
}

func (d *demo) status(id string) (*pb.StatusResponse, error) {
	return fetchStatus(d.ctx, &nodeFlags{addr: d.nodes[id].MemberAddr(), timeout: 10 * time.Second})
}

// startNode starts a member's node, joining the ones already running.
func (d *demo) startNode(id string) error {
	var join []string
	for _, n := range d.nodes {
		join = append(join, n.GossipAddr())
	}
	n, err := localNode(d.g, d.keys[id], d.dir, join, true, func(c *node.Config) {
		c.CheckpointInterval = 100 * time.Millisecond
		c.AntiEntropyInterval = time.Second
	})
	if err != nil {
		return err
	}
	d.nodes[id] = n
	return nil
}

func (d *demo) run(images string) error {
	founders := []string{"alpha", "bravo", "charlie"}
	if err := d.step("three platforms make their member keys", func() (string, error) {
		var out []string
		for _, id := range append(founders, "delta") {
			k, err := consortium.GenerateKey(rand.Reader, id)
			if err != nil {
				return "", err
			}
			d.keys[id] = k
			if err := writeNew(filepath.Join(d.dir, id+".key"), []byte(k.String()+"\n"), 0o600); err != nil {
				return "", err
			}
			if id != "delta" {
				out = append(out, k.Public().String())
			}
		}
		return strings.Join(out, "\n"), nil
	}); err != nil {
		return err
	}
	if err := d.step("they draft the genesis; each founder signs it separately", func() (string, error) {
		var ms []consortium.Member
		for _, id := range founders {
			ms = append(ms, consortium.Member{ID: id, Key: d.keys[id].Public().Key, Role: pb.Role_ROLE_MEMBER})
		}
		file, err := consortium.NewGenesisDraft("hashfed demo consortium", time.Now(), ms, 2)
		if err != nil {
			return "", err
		}
		for _, id := range []string{"charlie", "alpha", "bravo"} {
			if file, err = consortium.SignGenesis(file, d.keys[id]); err != nil {
				return "", err
			}
		}
		if d.g, err = consortium.ParseGenesis(file); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(d.dir, "genesis.bin"), file, 0o644); err != nil {
			return "", err
		}
		return fmt.Sprintf("consortium %s, quorum 2, signed by alpha, bravo and charlie", d.g.ID), nil
	}); err != nil {
		return err
	}
	if err := d.step("each starts a node on loopback; they find each other by gossip", func() (string, error) {
		for _, id := range founders {
			if err := d.startNode(id); err != nil {
				return "", err
			}
		}
		ok := waitUntil(10*time.Second, func() bool {
			st, err := d.status("charlie")
			if err != nil {
				return false
			}
			alive := 0
			for _, p := range st.Peers {
				if p.State == "alive" {
					alive++
				}
			}
			return alive == 2
		})
		if !ok {
			return "", errors.New("the nodes did not see each other within 10 s")
		}
		var out []string
		for _, id := range founders {
			out = append(out, fmt.Sprintf("%s: peer API %s, member API %s", id, d.nodes[id].PeerAddr(), d.nodes[id].MemberAddr()))
		}
		return strings.Join(out, "\n"), nil
	}); err != nil {
		return err
	}
	hashes := map[string]imageHashes{}
	if err := d.step(fmt.Sprintf("alpha hashes %d sample images and adds them with labels", len(demoImages)), func() (string, error) {
		var es []*pb.Entry
		var out []string
		for _, p := range demoImages {
			h, err := hashImageFile(filepath.Join(images, p))
			if err != nil {
				return "", err
			}
			hashes[p] = h
			cid := "demo:" + filepath.Base(p)
			for _, s := range []struct {
				t, v string
				q    int
			}{{"pdq", h.PDQ, h.Quality}, {"md5", h.MD5, -1}, {"sha256", h.SHA256, -1}} {
				sig, _ := consortium.ParseSignal(s.t, s.v)
				en, err := newAdd(sig, []string{"behaviour:glorification-of-terrorist-acts", "incident:demo-2026", "content:branded-publication"}, cid, "found in a demo channel", 0, s.q)
				if err != nil {
					return "", err
				}
				es = append(es, en)
			}
			out = append(out, fmt.Sprintf("%-12s pdq %s… quality %d", filepath.Base(p), h.PDQ[:16], h.Quality))
		}
		res, err := d.submit("alpha", es)
		if err != nil {
			return "", err
		}
		out = append(out, fmt.Sprintf("%d entries appended to alpha's log (indices %d-%d)", len(res), res[0].Index, res[len(res)-1].Index))
		return strings.Join(out, "\n"), nil
	}); err != nil {
		return err
	}
	edited, err := hashImageFile(filepath.Join(images, demoEdited))
	if err != nil {
		return err
	}
	editedSig, _ := consortium.ParseSignal("pdq", edited.PDQ)
	if err := d.step("bravo matches an edited copy (squashed to a square) and sees alpha's labels", func() (string, error) {
		var ms []*pb.MatchResult
		t := time.Now()
		ok := waitUntil(10*time.Second, func() bool {
			ms, err = d.match("bravo", editedSig, edited.Quality)
			return err == nil && len(ms) > 0
		})
		if !ok {
			return "", fmt.Errorf("no match at bravo within 10 s (%v)", err)
		}
		m := ms[0]
		if len(m.Listings) == 0 || m.Listings[0].Member != "alpha" || !strings.Contains(strings.Join(m.Listings[0].Labels, " "), "glorification") {
			return "", fmt.Errorf("unexpected match: %v", m)
		}
		return fmt.Sprintf("matched %s at distance %d, %v after alpha's add returned\nlisted by alpha: %s (content %s)", filepath.Base(demoImages[0]), m.Distance,
			time.Since(t).Round(time.Millisecond), strings.Join(m.Listings[0].Labels, " "), m.Listings[0].ContentId), nil
	}); err != nil {
		return err
	}
	wee, _ := consortium.ParseSignal("pdq", hashes[demoImages[1]].PDQ)
	if err := d.step("charlie disputes one signal as a false positive; alpha sees it", func() (string, error) {
		if _, err := d.submit("charlie", []*pb.Entry{{Op: &pb.Entry_Opinion{Opinion: &pb.Opinion{Signal: wee.Proto(), Stance: pb.Stance_STANCE_FALSE_POSITIVE, Text: "this is a cartoon, not propaganda"}}}}); err != nil {
			return "", err
		}
		var ms []*pb.MatchResult
		ok := waitUntil(10*time.Second, func() bool {
			ms, _ = d.match("alpha", wee, -1)
			return len(ms) == 1 && len(ms[0].Opinions) == 1
		})
		if !ok {
			return "", errors.New("charlie's opinion did not reach alpha within 10 s")
		}
		o := ms[0].Opinions[0]
		return fmt.Sprintf("alpha's match of wee.jpg now carries %s's opinion: %s (%q)", o.Author, consortium.StanceName(o.Stance), o.Text), nil
	}); err != nil {
		return err
	}
	revoked, _ := consortium.ParseSignal("pdq", hashes[demoImages[3]].PDQ)
	if err := d.step("alpha revokes one hash; bravo stops matching it", func() (string, error) {
		r := &pb.Revoke{Target: &pb.Revoke_Signal{Signal: revoked.Proto()}, Reason: pb.RevokeReason_REVOKE_REASON_FALSE_POSITIVE, Text: "mislabelled"}
		if _, err := d.submit("alpha", []*pb.Entry{{Op: &pb.Entry_Revoke{Revoke: r}}}); err != nil {
			return "", err
		}
		t := time.Now()
		ok := waitUntil(10*time.Second, func() bool {
			ms, err := d.match("bravo", revoked, -1)
			return err == nil && len(ms) == 0
		})
		if !ok {
			return "", errors.New("bravo still matches the revoked hash after 10 s")
		}
		return fmt.Sprintf("q1050.jpg no longer matches at bravo, %v after the revoke returned", time.Since(t).Round(time.Millisecond)), nil
	}); err != nil {
		return err
	}
	if err := d.step("a fourth platform, delta, is proposed by alpha and endorsed by bravo", func() (string, error) {
		pk := d.keys["delta"].Public()
		res, err := d.submit("alpha", []*pb.Entry{{Op: &pb.Entry_Propose{Propose: &pb.Propose{Epoch: 0, Text: "admit delta", Author: "alpha",
			Changes: []*pb.RosterChange{{Change: &pb.RosterChange_Admit{Admit: &pb.Member{Id: pk.ID, PublicKey: pk.Key, Role: pb.Role_ROLE_MEMBER}}}}}}}})
		if err != nil {
			return "", err
		}
		h := consortium.LeafHash(res[0].Entry)
		ok := waitUntil(10*time.Second, func() bool {
			st, err := d.status("bravo")
			return err == nil && len(st.Proposals) == 1
		})
		if !ok {
			return "", errors.New("bravo did not see the proposal within 10 s")
		}
		if _, err := d.submit("bravo", []*pb.Entry{{Op: &pb.Entry_Endorse{Endorse: &pb.Endorse{Epoch: 0, Proposal: h[:]}}}}); err != nil {
			return "", err
		}
		ok = waitUntil(10*time.Second, func() bool {
			for _, id := range founders {
				st, err := d.status(id)
				if err != nil || st.RosterEpoch != 1 {
					return false
				}
			}
			return true
		})
		if !ok {
			return "", errors.New("the roster did not reach epoch 1 everywhere within 10 s")
		}
		return fmt.Sprintf("proposal %s…: 2 of 3 votes (quorum 2); every node's roster is at epoch 1", hex.EncodeToString(h[:6])), nil
	}); err != nil {
		return err
	}
	if err := d.step("delta starts from the genesis alone, bootstraps everything and matches", func() (string, error) {
		if err := d.startNode("delta"); err != nil {
			return "", err
		}
		want, err := d.status("alpha")
		if err != nil {
			return "", err
		}
		ok := waitUntil(15*time.Second, func() bool {
			st, err := d.status("delta")
			return err == nil && st.StateDigest == want.StateDigest
		})
		if !ok {
			return "", errors.New("delta did not reach alpha's state within 15 s")
		}
		ms, err := d.match("delta", editedSig, edited.Quality)
		if err != nil || len(ms) == 0 {
			return "", fmt.Errorf("delta does not match the edited image: %v", err)
		}
		if _, err := d.submit("delta", []*pb.Entry{mustAdd(revoked, "behaviour:threat-incitement")}); err != nil {
			return "", fmt.Errorf("delta cannot add: %w", err)
		}
		st, _ := d.status("delta")
		return fmt.Sprintf("delta holds %d logs, %d signals, digest %s…; it matched the edited image and listed its first hash", len(st.Logs), st.Signals, st.StateDigest[:16]), nil
	}); err != nil {
		return err
	}
	return d.step("an auditor exports the logs, verifies every signature and replays", func() (string, error) {
		ok := waitUntil(15*time.Second, func() bool {
			var first string
			for _, id := range []string{"alpha", "bravo", "charlie", "delta"} {
				st, err := d.status(id)
				if err != nil || st.Logs == nil {
					return false
				}
				for _, l := range st.Logs {
					if l.CheckpointSize != l.Size || len(l.Cosigners) < 2 {
						return false
					}
				}
				if first == "" {
					first = st.StateDigest
				} else if st.StateDigest != first {
					return false
				}
			}
			return true
		})
		if !ok {
			return "", errors.New("the four nodes did not agree on one cosigned state within 15 s")
		}
		in, err := fetchBundle(d.ctx, &nodeFlags{addr: d.nodes["charlie"].MemberAddr(), timeout: 10 * time.Second})
		if err != nil {
			return "", err
		}
		if err := writeBundle(filepath.Join(d.dir, "audit-bundle"), in); err != nil {
			return "", err
		}
		in, err = readBundle(filepath.Join(d.dir, "audit-bundle"))
		if err != nil {
			return "", err
		}
		r := consortium.Audit(in, consortium.AuditOptions{RequireCosignatures: 2, RequireHeads: 1})
		if !r.OK {
			return "", fmt.Errorf("audit failed:\n%s", r)
		}
		st, _ := d.status("delta")
		if r.Digest != st.StateDigest {
			return "", fmt.Errorf("audit digest %s differs from the nodes' %s", r.Digest, st.StateDigest)
		}
		var logs []string
		for _, l := range r.Logs {
			logs = append(logs, fmt.Sprintf("%s %d entries (cosigned by %d)", l.Member, l.Verified, len(l.Cosigners)))
		}
		return fmt.Sprintf("%s\nroster epochs %d, %d signals, %d listings, heads notes of %d members\ndigest %s = every node's digest", strings.Join(logs, ", "), len(r.Roster), r.Signals, r.Listings, len(r.Heads), r.Digest), nil
	})
}

func mustAdd(sig consortium.Signal, labels ...string) *pb.Entry {
	en, err := newAdd(sig, labels, "", "", 0, -1)
	if err != nil {
		panic(err)
	}
	return en
}

var _ io.Writer
