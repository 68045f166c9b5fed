// Package version says which build of hashfed is running, from the module
// and VCS information the Go toolchain stamps into every binary. It reads
// nothing else and has no side effects.
package version

import (
	"runtime/debug"
	"sync"
)

// unknown is what Version reports when the binary carries no build
// information (for example a test binary built without module support).
const unknown = "(unknown)"

var once = sync.OnceValue(compute)

// Version returns a one-line description of this build: the main module's
// version when it was built from a tagged module ("v1.2.3"), otherwise
// "devel" followed by the VCS revision (12 hex digits), "+dirty" when the
// work tree had uncommitted changes, and the commit time in UTC. It never
// fails; without build information it returns "(unknown)".
func Version() string { return once() }

// GoVersion returns the Go toolchain version this binary was built with.
func GoVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return unknown
	}
	return bi.GoVersion
}

func compute() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return unknown
	}
	return describe(bi)
}

// describe is Version's rule, separated from ReadBuildInfo so it can be tested.
func describe(bi *debug.BuildInfo) string {
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, when string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	out := "devel " + rev
	if dirty {
		out += "+dirty"
	}
	if when != "" {
		out += " " + when
	}
	return out
}
