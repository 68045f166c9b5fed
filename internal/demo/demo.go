// Package demo runs hashfed's demo: a consortium of three platforms on loopback doing its whole
// story (keys, genesis, adds, a match of an edited copy, a dispute, a revoke, a fourth member
// admitted and bootstrapped, an NGO and a referral unit admitted, a parody account certified and
// matched as protected, a referral answered by two members, an audit), through the same client the
// hashfed commands use.
package demo

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
	"github.com/hashfed/hashfed/internal/localnet"
	"github.com/hashfed/hashfed/internal/memberclient"
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

	// callTimeout bounds each call the demo makes to a node.
	callTimeout = 10 * time.Second
)

// demo is the state of a running demo.
type demo struct {
	ctx   context.Context
	w     io.Writer
	dir   string
	g     *consortium.Genesis
	keys  map[string]*consortium.PrivateKey
	nodes map[string]*node.Node
	start time.Time
	steps int
}

// ErrFailed is returned when a step of the story failed; Run has already printed why.
var ErrFailed = errors.New("demo failed")

// Run runs the demo in dir (a temporary directory, removed afterwards, when dir is ""), with the
// sample images under images, printing each step to w.
func Run(ctx context.Context, w io.Writer, dir, images string) error {
	for _, p := range append(append([]string{}, demoImages...), demoEdited) {
		if _, err := os.Stat(filepath.Join(images, p)); err != nil {
			return fmt.Errorf("sample image %s missing: run hashfed demo from the repository root, or pass --images (%v)", p, err)
		}
	}
	d := &demo{ctx: ctx, w: w, dir: dir, keys: map[string]*consortium.PrivateKey{}, nodes: map[string]*node.Node{}, start: time.Now()}
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
	fmt.Fprintf(w, "hashfed demo: a consortium of three platforms on loopback, in %s\n\n", d.dir)
	err := d.run(images)
	total := time.Since(d.start).Round(time.Millisecond)
	if err != nil {
		fmt.Fprintf(w, "\ndemo FAILED after %d steps and %v: %v\n", d.steps, total, err)
		return ErrFailed
	}
	fmt.Fprintf(w, "\ndemo OK: %d steps in %v\n", d.steps, total)
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
	fmt.Fprintf(d.w, "[%s] %2d. %-62s %7.0f ms\n", mark, d.steps, title, float64(time.Since(t).Microseconds())/1000)
	if detail != "" {
		for _, l := range strings.Split(strings.TrimRight(detail, "\n"), "\n") {
			fmt.Fprintf(d.w, "          %s\n", l)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", title, err)
	}
	return nil
}

// dial connects to a demo node's member API as the CLI does.
func (d *demo) dial(id string) (*memberclient.Client, error) {
	return memberclient.Dial(d.nodes[id].MemberAddr(), "")
}

// submit sends entries to a demo node; it fails if any was refused.
func (d *demo) submit(id string, es []*pb.Entry) ([]*pb.SubmitResult, error) {
	c, err := d.dial(id)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	results, err := c.Submit(d.ctx, es, callTimeout)
	if err != nil {
		return nil, err
	}
	for _, r := range results {
		if r.Error != "" {
			return nil, errors.New(r.Error)
		}
	}
	return results, nil
}

func (d *demo) match(id string, sig consortium.Signal, quality int) ([]*pb.MatchResult, error) {
	c, err := d.dial(id)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Match(d.ctx, memberclient.MatchRequest(sig, quality, -1, false), callTimeout)
}

func (d *demo) status(id string) (*pb.StatusResponse, error) {
	c, err := d.dial(id)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Status(d.ctx, callTimeout)
}

// startNode starts a member's node, joining the ones already running.
func (d *demo) startNode(id string) error {
	var join []string
	for _, n := range d.nodes {
		join = append(join, n.GossipAddr())
	}
	n, err := localnet.Node(d.g, d.keys[id], d.dir, join, true, func(c *node.Config) {
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
		for _, id := range append(founders, "delta", "ngo", "iru") {
			k, err := consortium.GenerateKey(rand.Reader, id)
			if err != nil {
				return "", err
			}
			d.keys[id] = k
			if err := memberclient.WriteNew(filepath.Join(d.dir, id+".key"), []byte(k.String()+"\n"), 0o600); err != nil {
				return "", err
			}
			if len(out) < len(founders) {
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
		ok := localnet.WaitUntil(10*time.Second, func() bool {
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
	hashes := map[string]memberclient.ImageHashes{}
	if err := d.step(fmt.Sprintf("alpha hashes %d sample images and adds them with labels", len(demoImages)), func() (string, error) {
		var es []*pb.Entry
		var out []string
		for _, p := range demoImages {
			h, err := memberclient.HashImageFile(filepath.Join(images, p))
			if err != nil {
				return "", err
			}
			hashes[p] = h
			cid := "demo:" + filepath.Base(p)
			sigs, err := h.Signals()
			if err != nil {
				return "", err
			}
			for _, s := range sigs {
				en, err := consortium.NewAdd(0, s.Signal, []string{"behaviour:glorification-of-terrorist-acts", "incident:demo-2026", "content:branded-publication"}, consortium.AddOptions{ContentID: cid, Note: "found in a demo channel", Quality: memberclient.QualityOf(s.Quality)})
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
	edited, err := memberclient.HashImageFile(filepath.Join(images, demoEdited))
	if err != nil {
		return err
	}
	editedSig, _ := consortium.ParseSignal("pdq", edited.PDQ)
	if err := d.step("bravo matches an edited copy (squashed to a square) and sees alpha's labels", func() (string, error) {
		var ms []*pb.MatchResult
		t := time.Now()
		ok := localnet.WaitUntil(10*time.Second, func() bool {
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
		// An opinion is refused on a signal no member lists at charlie's node yet: wait for
		// alpha's add of it to reach charlie (a loaded machine may take longer than the step before).
		if !localnet.WaitUntil(10*time.Second, func() bool { ms, _ := d.match("charlie", wee, -1); return len(ms) > 0 }) {
			return "", fmt.Errorf("charlie does not match alpha's listing of %s", wee)
		}
		if _, err := d.submit("charlie", []*pb.Entry{must(consortium.NewOpinion(0, wee, pb.Stance_STANCE_FALSE_POSITIVE, "this is a cartoon, not propaganda"))}); err != nil {
			return "", err
		}
		var ms []*pb.MatchResult
		ok := localnet.WaitUntil(10*time.Second, func() bool {
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
		if _, err := d.submit("alpha", []*pb.Entry{must(consortium.NewRevokeSignal(0, revoked, pb.RevokeReason_REVOKE_REASON_FALSE_POSITIVE, "mislabelled"))}); err != nil {
			return "", err
		}
		t := time.Now()
		ok := localnet.WaitUntil(10*time.Second, func() bool {
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
		p := must(consortium.NewPropose(0, "alpha", 0, "admit delta", consortium.AdmitChange(d.keys["delta"].Public(), pb.Role_ROLE_MEMBER)))
		res, err := d.submit("alpha", []*pb.Entry{p})
		if err != nil {
			return "", err
		}
		h := consortium.LeafHash(res[0].Entry)
		ok := localnet.WaitUntil(10*time.Second, func() bool {
			st, err := d.status("bravo")
			return err == nil && len(st.Proposals) == 1
		})
		if !ok {
			return "", errors.New("bravo did not see the proposal within 10 s")
		}
		if _, err := d.submit("bravo", []*pb.Entry{must(consortium.NewEndorse(0, 0, h))}); err != nil {
			return "", err
		}
		ok = localnet.WaitUntil(10*time.Second, func() bool {
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
		ok := localnet.WaitUntil(15*time.Second, func() bool {
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
		if _, err := d.submit("delta", []*pb.Entry{must(consortium.NewAdd(0, revoked, []string{"behaviour:threat-incitement"}, consortium.AddOptions{}))}); err != nil {
			return "", fmt.Errorf("delta cannot add: %w", err)
		}
		st, _ := d.status("delta")
		return fmt.Sprintf("delta holds %d logs, %d signals, digest %s…; it matched the edited image and listed its first hash", len(st.Logs), st.Signals, st.StateDigest[:16]), nil
	}); err != nil {
		return err
	}
	if err := d.runRoles(); err != nil {
		return err
	}
	return d.step("an auditor exports the logs, verifies every signature and replays", func() (string, error) {
		ok := localnet.WaitUntil(roleWait, func() bool {
			var first string
			for id := range d.nodes {
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
			return "", fmt.Errorf("the six nodes did not agree on one cosigned state within %v", roleWait)
		}
		c, err := d.dial("charlie")
		if err != nil {
			return "", err
		}
		defer c.Close()
		in, err := c.Bundle(d.ctx)
		if err != nil {
			return "", err
		}
		if err := memberclient.WriteBundle(filepath.Join(d.dir, "audit-bundle"), in); err != nil {
			return "", err
		}
		in, err = memberclient.ReadBundle(filepath.Join(d.dir, "audit-bundle"))
		if err != nil {
			return "", err
		}
		r := consortium.Audit(in, consortium.AuditOptions{RequireCosignatures: 2, RequireHeads: 1, RequireAnswers: true})
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
		var refs []string
		for _, ref := range r.Referrals {
			refs = append(refs, strings.TrimRight(ref.String(), "\n"))
		}
		return fmt.Sprintf("%s\nroster epochs %d, %d signals, %d listings, %d certifications, heads notes of %d members\n%s\ndigest %s = every node's digest", strings.Join(logs, ", "), len(r.Roster), r.Signals, r.Listings, r.Certifications, len(r.Heads), strings.Join(refs, "\n"), r.Digest), nil
	})
}

// must returns en, panicking on err: the demo's entries are fixed and valid, so an error is a bug.
func must(en *pb.Entry, err error) *pb.Entry {
	if err != nil {
		panic(err)
	}
	return en
}
