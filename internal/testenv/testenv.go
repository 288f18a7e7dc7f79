// Package testenv holds what procgate's tests ask of the machine they run
// on: root, for the tests that spawn processes under other uids, pin
// them and read their /proc files.
package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
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

// Group returns the gid of group name (procgate's default policy names
// group procgate), creating it as a system group when the machine has
// none. It is left in place: packages run their tests in parallel, and
// one package removing the group would take it from another's daemon
// while that one reads it (the README's set-up creates the same group).
func Group(t testing.TB, name string) uint32 {
	t.Helper()
	g, err := user.LookupGroup(name)
	if err != nil {
		out, aerr := exec.Command("groupadd", "--system", name).CombinedOutput()
		// Another package's test may have created it meanwhile
		// (groupadd: exit status 9, the group exists).
		if g, err = user.LookupGroup(name); err != nil {
			t.Fatalf("groupadd %s: %v\n%s", name, aerr, out)
		}
	}
	id, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		t.Fatal(fmt.Errorf("group %s: gid %q: %w", name, g.Gid, err))
	}
	return uint32(id)
}

// SysWithBPF returns a directory standing for sysfs, as the live reader
// takes one (live.Options.Sys): its kernel/security/lsm lists lsms, a
// bpffs of the test's own is mounted on fs/bpf (unmounted when the test
// ends), and fs/cgroup is this machine's. Root only.
func SysWithBPF(t testing.TB, lsms string) string {
	t.Helper()
	sys := t.TempDir()
	if err := os.MkdirAll(sys+"/kernel/security", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sys+"/kernel/security/lsm", []byte(lsms), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(sys+"/fs/bpf", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/sys/fs/cgroup", sys+"/fs/cgroup"); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("bpf", sys+"/fs/bpf", "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(sys+"/fs/bpf", unix.MNT_DETACH) })
	return sys
}
