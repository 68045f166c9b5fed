package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/node"
)

// fileConfig is the TOML configuration file of hashfed serve; hashfed.example.toml documents every
// field. Relative paths are relative to the file's directory.
type fileConfig struct {
	Genesis string `toml:"genesis"`
	Key     string `toml:"key"`
	DataDir string `toml:"data_dir"`
	Peer    struct {
		Listen    string   `toml:"listen"`
		Advertise string   `toml:"advertise"`
		Replicas  []string `toml:"replicas"`
	} `toml:"peer"`
	Replica struct {
		Follow string `toml:"follow"`
		Member string `toml:"member"`
	} `toml:"replica"`
	Gossip struct {
		Listen       string   `toml:"listen"`
		Advertise    string   `toml:"advertise"`
		Join         []string `toml:"join"`
		Keys         []string `toml:"keys"`
		ClusterLabel string   `toml:"cluster_label"`
	} `toml:"gossip"`
	MemberAPI struct {
		Listen    string `toml:"listen"`
		TokenFile string `toml:"token_file"`
		off       bool
	} `toml:"member_api"`
	HTTP struct {
		Listen       string   `toml:"listen"`
		HashURLAllow []string `toml:"hash_url_allow"`
		off          bool
	} `toml:"http"`
	Match struct {
		QualityGate      *int   `toml:"quality_gate"`
		DisputeThreshold int    `toml:"dispute_threshold"`
		FloodThreshold   int    `toml:"flood_threshold"`
		FloodWindow      string `toml:"flood_window"`
	} `toml:"match"`
	Tuning struct {
		CheckpointInterval  string `toml:"checkpoint_interval"`
		AntiEntropyInterval string `toml:"anti_entropy_interval"`
		GossipInterval      string `toml:"gossip_interval"`
		GossipNodes         int    `toml:"gossip_nodes"`
		PushFanout          *int   `toml:"push_fanout"`
		FetchParallel       int    `toml:"fetch_parallel"`
		MaxMatchStreams     int    `toml:"max_match_streams"`
		MaxPeerStreams      int    `toml:"max_peer_streams"`
		MaxMessageBytes     int    `toml:"max_message_bytes"`
		NoSync              bool   `toml:"no_sync"`
	} `toml:"tuning"`
	Log struct {
		Level  string `toml:"level"`
		Format string `toml:"format"`
	} `toml:"log"`
}

func runServe(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "serve", "--config FILE [flags]")
	cfgFile := fs.String("config", "", "configuration file (TOML; see hashfed.example.toml)")
	var over fileConfig
	var join listFlag
	fs.StringVar(&over.Genesis, "genesis", "", "genesis file (overrides the config)")
	fs.StringVar(&over.Key, "key", "", "member key file (overrides the config)")
	fs.StringVar(&over.DataDir, "data-dir", "", "data directory (overrides the config)")
	fs.StringVar(&over.Peer.Listen, "peer-listen", "", "peer API address (overrides the config)")
	fs.StringVar(&over.Gossip.Listen, "gossip-listen", "", "gossip address (overrides the config)")
	fs.Var(&join, "join", "gossip address of a node to join (repeat; overrides the config)")
	fs.StringVar(&over.Replica.Follow, "follow", "", "run as a read replica of the member node whose peer API is at host:port (--key is then the replica's key, listed in that node's [peer] replicas; needs --follow-member)")
	fs.StringVar(&over.Replica.Member, "follow-member", "", "with --follow: the member whose node the replica follows; the node at the follow address must prove that member's key, or it is refused")
	fs.StringVar(&over.MemberAPI.Listen, "member-listen", "", "member API address, host:port or unix:PATH (overrides the config)")
	fs.StringVar(&over.HTTP.Listen, "http-listen", "", "HTTP address for /metrics, /healthz and the JSON API (overrides the config)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (overrides the config)")
	recoverFlag := fs.Bool("recover", false, "after a lost or damaged store: move a damaged store file aside (never deleted), start a new store, and sign nothing until this member's own log is restored from peers")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var fc fileConfig
	base := "."
	var md toml.MetaData
	if *cfgFile != "" {
		var err error
		md, err = toml.DecodeFile(*cfgFile, &fc)
		if err != nil {
			return fmt.Errorf("config %s: %w", *cfgFile, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			return fmt.Errorf("config %s: unknown setting %q", *cfgFile, und[0].String())
		}
		base = filepath.Dir(*cfgFile)
	}
	mergeOverrides(&fc, &over, join)
	if *logLevel != "" {
		fc.Log.Level = *logLevel
	}
	// An empty listen address in the file turns the API off; one left out keeps the default.
	fc.MemberAPI.off = md.IsDefined("member_api", "listen") && fc.MemberAPI.Listen == "" && over.MemberAPI.Listen == ""
	fc.HTTP.off = md.IsDefined("http", "listen") && fc.HTTP.Listen == "" && over.HTTP.Listen == ""
	cfg, err := nodeConfig(&fc, base, e)
	if err != nil {
		return err
	}
	cfg.Recover = *recoverFlag
	n, err := node.New(cfg)
	if err != nil {
		return err
	}
	if err := n.Start(); err != nil {
		return err
	}
	if cfg.Follow != "" {
		fmt.Fprintf(e.stdout, "hashfed read replica %s of %s's node at %s serving: member API %s, http %s (submissions go to the member node)\n", n.ID(), cfg.FollowMember, cfg.Follow, orNone(n.MemberAddr()), orNone(n.HTTPAddr()))
	} else {
		fmt.Fprintf(e.stdout, "hashfed node %s serving: member API %s, peer API %s, gossip %s, http %s\n", n.ID(), orNone(n.MemberAddr()), n.PeerAddr(), n.GossipAddr(), orNone(n.HTTPAddr()))
	}
	<-ctx.Done()
	fmt.Fprintln(e.stdout, "stopping")
	return n.Close()
}

func orNone(s string) string {
	if s == "" {
		return "off"
	}
	return s
}

func mergeOverrides(fc, over *fileConfig, join []string) {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&fc.Genesis, over.Genesis)
	set(&fc.Key, over.Key)
	set(&fc.DataDir, over.DataDir)
	set(&fc.Peer.Listen, over.Peer.Listen)
	set(&fc.Gossip.Listen, over.Gossip.Listen)
	set(&fc.MemberAPI.Listen, over.MemberAPI.Listen)
	set(&fc.HTTP.Listen, over.HTTP.Listen)
	set(&fc.Replica.Follow, over.Replica.Follow)
	set(&fc.Replica.Member, over.Replica.Member)
	if len(join) > 0 {
		fc.Gossip.Join = join
	}
}

// nodeConfig maps the file configuration onto node.Config; this is the only place that does.
func nodeConfig(fc *fileConfig, base string, e *env) (node.Config, error) {
	cfg := node.DefaultConfig()
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	if fc.Genesis == "" || fc.Key == "" || fc.DataDir == "" {
		return cfg, usageErr("serve needs genesis, key and data_dir (in the config file or as flags)")
	}
	g, err := loadGenesis(rel(fc.Genesis))
	if err != nil {
		return cfg, err
	}
	k, err := loadKey(rel(fc.Key))
	if err != nil {
		return cfg, err
	}
	cfg.Genesis, cfg.Key, cfg.DataDir = g, k, rel(fc.DataDir)
	str := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	str(&cfg.PeerListen, fc.Peer.Listen)
	str(&cfg.PeerAdvertise, fc.Peer.Advertise)
	str(&cfg.GossipListen, fc.Gossip.Listen)
	str(&cfg.GossipAdvertise, fc.Gossip.Advertise)
	str(&cfg.ClusterLabel, fc.Gossip.ClusterLabel)
	cfg.Join = fc.Gossip.Join
	cfg.Follow, cfg.FollowMember = fc.Replica.Follow, fc.Replica.Member
	for _, r := range fc.Peer.Replicas {
		// A public key, or the path of a .pub file holding one.
		text := strings.TrimSpace(r)
		if strings.HasSuffix(text, ".pub") {
			b, err := os.ReadFile(rel(text))
			if err != nil {
				return cfg, fmt.Errorf("peer replica key file: %w", err)
			}
			text = strings.TrimSpace(string(b))
		}
		k, err := consortium.ParsePublicKey(text)
		if err != nil {
			return cfg, fmt.Errorf("peer replica key %q: %v", r, err)
		}
		cfg.Replicas = append(cfg.Replicas, k)
	}
	for i, k := range fc.Gossip.Keys {
		b, err := base64.StdEncoding.DecodeString(k)
		if err != nil {
			return cfg, fmt.Errorf("gossip key %d is not base64: %v", i, err)
		}
		cfg.GossipKeys = append(cfg.GossipKeys, b)
	}
	if fc.MemberAPI.off {
		cfg.MemberListen = ""
	}
	if fc.HTTP.off {
		cfg.HTTPListen = ""
	}
	if fc.MemberAPI.Listen != "" {
		l := fc.MemberAPI.Listen
		if p, ok := strings.CutPrefix(l, "unix:"); ok {
			l = "unix:" + rel(p)
		}
		cfg.MemberListen = l
	}
	if fc.MemberAPI.TokenFile != "" {
		b, err := os.ReadFile(rel(fc.MemberAPI.TokenFile))
		if err != nil {
			return cfg, fmt.Errorf("member API token file: %w", err)
		}
		cfg.MemberToken = strings.TrimSpace(string(b))
	} else if t := e.getenv("HASHFED_TOKEN"); t != "" {
		cfg.MemberToken = t
	}
	str(&cfg.HTTPListen, fc.HTTP.Listen)
	cfg.HashURLAllow = fc.HTTP.HashURLAllow
	if fc.Match.QualityGate != nil {
		cfg.Store.QualityGate = *fc.Match.QualityGate
	}
	cfg.Store.DisputeThreshold = fc.Match.DisputeThreshold
	cfg.Store.FloodThreshold = fc.Match.FloodThreshold
	cfg.Store.NoSync = fc.Tuning.NoSync
	for _, d := range []struct {
		v   string
		dst *time.Duration
	}{{fc.Tuning.CheckpointInterval, &cfg.CheckpointInterval}, {fc.Tuning.AntiEntropyInterval, &cfg.AntiEntropyInterval}, {fc.Tuning.GossipInterval, &cfg.GossipInterval}, {fc.Match.FloodWindow, &cfg.Store.FloodWindow}} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil {
			return cfg, fmt.Errorf("config: %v", err)
		}
		*d.dst = v
	}
	num := func(dst *int, v int) {
		if v != 0 {
			*dst = v
		}
	}
	num(&cfg.GossipNodes, fc.Tuning.GossipNodes)
	num(&cfg.FetchParallel, fc.Tuning.FetchParallel)
	num(&cfg.MaxMatchStreams, fc.Tuning.MaxMatchStreams)
	num(&cfg.MaxPeerStreams, fc.Tuning.MaxPeerStreams)
	num(&cfg.MaxMessageBytes, fc.Tuning.MaxMessageBytes)
	if fc.Tuning.PushFanout != nil {
		cfg.PushFanout = *fc.Tuning.PushFanout
	}
	level := slog.LevelInfo
	if fc.Log.Level != "" {
		if err := level.UnmarshalText([]byte(fc.Log.Level)); err != nil {
			return cfg, fmt.Errorf("log level %q: want debug, info, warn or error", fc.Log.Level)
		}
	}
	opts := &slog.HandlerOptions{Level: level}
	if fc.Log.Format == "json" {
		cfg.Logger = slog.New(slog.NewJSONHandler(e.stderr, opts))
	} else {
		cfg.Logger = slog.New(slog.NewTextHandler(e.stderr, opts))
	}
	return cfg, nil
}
