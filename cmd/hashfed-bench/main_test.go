package main

import (
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"hashfed-bench": func() { os.Exit(mainExit()) },
	})
}

// TestScripts runs short benchmarks in testdata/*.txt, as a user types them, to keep them working.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata"})
}
