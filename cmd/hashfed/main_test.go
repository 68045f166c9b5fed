package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"hashfed": func() { os.Exit(mainExit()) },
	})
}

// TestScripts runs the command-line journeys in testdata/*.txt, as a user types them.
func TestScripts(t *testing.T) {
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Setup: func(env *testscript.Env) error {
			env.Setenv("REPO", repo)
			env.Setenv("HASHFED_NODE", "")
			env.Setenv("HASHFED_TOKEN", "")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// waitfile PATH [SECONDS]: wait for a file (a node's socket) to appear.
			"waitfile": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) < 1 {
					ts.Fatalf("usage: waitfile PATH [SECONDS]")
				}
				secs := 20
				if len(args) > 1 {
					secs, _ = strconv.Atoi(args[1])
				}
				deadline := time.Now().Add(time.Duration(secs) * time.Second)
				for {
					_, err := os.Stat(ts.MkAbs(args[0]))
					if err == nil {
						return
					}
					if time.Now().After(deadline) {
						ts.Fatalf("%s did not appear within %d s", args[0], secs)
					}
					time.Sleep(20 * time.Millisecond)
				}
			},
			// freeport VAR: set VAR to a loopback port free a moment ago for both TCP and UDP (for a
			// gossip address other nodes join). It is chosen below the kernel's ephemeral range, so
			// that the port-0 listeners of tests running beside this one cannot take it before the
			// node binds it (they did: "address already in use").
			"freeport": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: freeport VAR")
				}
				port, err := freeLoopbackPort()
				ts.Check(err)
				ts.Setenv(args[0], strconv.Itoa(port))
			},
			// capture VAR REGEXP: set VAR to the first group of REGEXP in the last command's stdout.
			"capture": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: capture VAR REGEXP")
				}
				m := regexp.MustCompile(args[1]).FindStringSubmatch(ts.ReadFile("stdout"))
				if len(m) < 2 {
					ts.Fatalf("stdout has no match for %s", args[1])
				}
				ts.Setenv(args[0], m[1])
			},
			// waitout SECONDS REGEXP COMMAND [ARGS]: run the command every 100 ms until its stdout
			// matches REGEXP (what a node learns from its peers arrives in its own time), whatever
			// its exit status (match exits 1 on "no match").
			"waitout": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) < 3 {
					ts.Fatalf("usage: waitout SECONDS REGEXP COMMAND [ARGS]")
				}
				secs, err := strconv.Atoi(args[0])
				ts.Check(err)
				re := regexp.MustCompile(args[1])
				deadline := time.Now().Add(time.Duration(secs) * time.Second)
				for {
					_ = ts.Exec(args[2], args[3:]...) // the exit status does not matter: stdout decides
					if re.MatchString(ts.ReadFile("stdout")) {
						return
					}
					if time.Now().After(deadline) {
						ts.Fatalf("%s: no stdout matching %s within %d s", strings.Join(args[2:], " "), args[1], secs)
					}
					time.Sleep(100 * time.Millisecond)
				}
			},
			// filemode PATH MODE: the file's permission bits, in octal.
			"filemode": func(ts *testscript.TestScript, neg bool, args []string) {
				fi, err := os.Stat(ts.MkAbs(args[0]))
				ts.Check(err)
				if got := fmt.Sprintf("%04o", fi.Mode().Perm()); got != args[1] {
					ts.Fatalf("%s has mode %s, want %s", args[0], got, args[1])
				}
			},
			// chmod MODE PATH
			"chmod": func(ts *testscript.TestScript, neg bool, args []string) {
				m, err := strconv.ParseUint(args[0], 8, 32)
				ts.Check(err)
				ts.Check(os.Chmod(ts.MkAbs(args[1]), os.FileMode(m)))
			},
			// swaplines FILE I J: swap two lines of a file (1-based), to tamper with a log.
			"swaplines": func(ts *testscript.TestScript, neg bool, args []string) {
				p := ts.MkAbs(args[0])
				b, err := os.ReadFile(p)
				ts.Check(err)
				lines := strings.Split(string(b), "\n")
				i, _ := strconv.Atoi(args[1])
				j, _ := strconv.Atoi(args[2])
				lines[i-1], lines[j-1] = lines[j-1], lines[i-1]
				ts.Check(os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o644))
			},
		},
	})
}

// freeLoopbackPort returns a port of 127.0.0.1 on which both a TCP and a UDP listener could be
// opened a moment ago, drawn at random from below the ephemeral port range.
func freeLoopbackPort() (int, error) {
	for range 200 {
		port := 20000 + rand.IntN(12000) // 20000-31999: below Linux's default ephemeral range (32768-60999)
		tl, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ul, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		tl.Close()
		if err != nil {
			continue
		}
		ul.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no loopback port free for TCP and UDP in 200 tries")
}
