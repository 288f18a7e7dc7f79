// Package testenv holds what procgate's tests ask of the machine they run
// on: root, for the tests that spawn processes under other uids, pin
// them and read their /proc files.
package testenv

import (
	"bytes"
	"os"
	"sync"
	"testing"
)

// EnvRequireRoot names the variable that turns a missing root into a
// failure: CI sets it (.ci/run), so that a run without root cannot pass
// by skipping.
const EnvRequireRoot = "PROCGATE_TEST_REQUIRE_ROOT"

// RequireRoot skips t, loudly, unless the test runs as root; with
// PROCGATE_TEST_REQUIRE_ROOT=1 it fails instead. why says what the test
// needs root for.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	msg := "needs root (" + why + "); run as root, as CI does"
	if os.Getenv(EnvRequireRoot) == "1" {
		t.Fatal(msg + ": " + EnvRequireRoot + "=1 forbids skipping")
	}
	t.Skip("!!! SKIPPED: " + msg)
}

// Buffer is a bytes.Buffer safe for concurrent use: a log or the output
// of a process the test reads while it is being written.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
