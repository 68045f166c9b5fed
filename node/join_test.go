package node

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestJoinOtherConsortium: a node whose seed runs another consortium's genesis says why the join
// fails (not just EOF), and stops retrying it after a few attempts.
func TestJoinOtherConsortium(t *testing.T) {
	ours := newCluster(t, 1, "alpha", "bravo")
	theirs := newCluster(t, 1, "alpha", "bravo", "charlie") // another genesis, another consortium
	seed := theirs.start("alpha")

	logs := &captured{}
	ours.tweak = func(cfg *Config) {
		cfg.Logger = slog.New(logs)
		cfg.Join = []string{seed.GossipAddr()}
	}
	ours.start("bravo")
	said := func(level slog.Level, parts ...string) bool {
		for _, r := range logs.lines() {
			if r.Level != level {
				continue
			}
			text := r.Message
			r.Attrs(func(a slog.Attr) bool { text += " " + a.Value.String(); return true })
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(text, p)
			}
			if ok {
				return true
			}
		}
		return false
	}
	waitFor(t, 30*time.Second, "the join refusal explained, and retries stopped", func() bool {
		return said(slog.LevelError, "join refused; not retrying", "another genesis", ours.g.ID.String())
	})
	if !said(slog.LevelWarn, "join refused; retrying", "another consortium") {
		t.Errorf("no warning explaining the first refusals")
	}
}
