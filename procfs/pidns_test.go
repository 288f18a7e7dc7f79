package procfs_test

import (
	"errors"
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/internal/proctest"
	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/procfs"
)

// openNS opens the pid namespace of process pid, pinned.
func openNS(t *testing.T, r *procfs.Root, pid int) *procfs.PIDNS {
	t.Helper()
	p, err := r.Pin(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ns, err := procfs.OpenPIDNS(p.Dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	return ns
}

// The kernel's translations between this process's pid namespace and a
// child's and a grandchild's, and the walk up (Below), on real nested
// namespaces and a sibling.
func TestPIDNS(t *testing.T) {
	testenv.RequireRoot(t, "creates pid namespaces")
	r := openProc(t)
	child := proctest.StartPIDNS(t, proctest.NSOptions{Sleepers: 1, Thread: true, Nested: &proctest.NSOptions{Sleepers: 1}})
	sibling := proctest.StartPIDNS(t, proctest.NSOptions{Sleepers: 1})
	in := child.Info.Nested
	innerInit := proctest.HostPID(t, in.Ino, 1)
	self, c, g, s := openNS(t, r, os.Getpid()), openNS(t, r, child.Init), openNS(t, r, innerInit), openNS(t, r, sibling.Init)
	if c.Ino() != child.Info.Ino || g.Ino() != in.Ino || c.String() != "pid:["+strconv.FormatUint(c.Ino(), 10)+"]" {
		t.Fatalf("namespaces %v, %v; want inodes %d, %d", c, g, child.Info.Ino, in.Ino)
	}

	t.Run("translations", func(t *testing.T) {
		if _, err := self.PIDOf(os.Getpid()); err != nil && errors.Is(err, procfs.ErrNoPIDTranslation) {
			t.Skip("SKIPPED: this kernel cannot translate pids between namespaces (Linux 6.11+)")
		}
		threadOf := proctest.HostPID(t, child.Info.Ino, child.Info.ThreadOf)
		tests := []struct {
			name string
			f    func(int) (int, error)
			in   int
			want int // 0: ESRCH
		}{
			{"child's pid 1", c.HostPID, 1, child.Init},
			{"child's init", c.PIDOf, child.Init, 1},
			{"the grandchild's init, from the child", c.PIDOf, innerInit, child.Info.NestedInit},
			{"the grandchild's init, by its child pid", c.HostPID, child.Info.NestedInit, innerInit},
			{"the grandchild's init, from itself", g.PIDOf, innerInit, 1},
			{"the child's init, from the grandchild", g.PIDOf, child.Init, 0},
			{"this process, from the child", c.PIDOf, os.Getpid(), 0},
			{"the sibling's init, from the child", c.PIDOf, sibling.Init, 0},
			{"a pid the child lacks", c.HostPID, proctest.NeverPID - 1, 0},
			{"this process, in its own namespace", self.PIDOf, os.Getpid(), os.Getpid()},
			{"the thread's process", c.TGIDOf, threadOf, child.Info.ThreadOf},
			{"pid 0", c.HostPID, 0, 0},
		}
		for _, tc := range tests {
			got, err := tc.f(tc.in)
			switch {
			case tc.want == 0 && !errors.Is(err, unix.ESRCH):
				t.Errorf("%s: %d, %v; want ESRCH", tc.name, got, err)
			case tc.want != 0 && (err != nil || got != tc.want):
				t.Errorf("%s: %d, %v; want %d", tc.name, got, err, tc.want)
			}
		}
	})

	t.Run("below", func(t *testing.T) {
		tests := []struct {
			name   string
			n, anc *procfs.PIDNS
			levels int
			ok     bool
		}{
			{"itself", c, c, 0, true},
			{"grandchild below child", g, c, 1, true},
			{"grandchild below this namespace", g, self, 2, true},
			{"child below this namespace", c, self, 1, true},
			{"child not below grandchild", c, g, 0, false},
			{"sibling not below child", s, c, 0, false},
			{"this namespace below nothing it can see", self, c, 0, false},
		}
		for _, tc := range tests {
			levels, ok, err := tc.n.Below(tc.anc)
			if err != nil || ok != tc.ok || levels != tc.levels {
				t.Errorf("%s: %d, %v, %v; want %d, %v", tc.name, levels, ok, err, tc.levels, tc.ok)
			}
		}
		if _, err := self.Parent(); !errors.Is(err, unix.EPERM) {
			t.Errorf("the parent of this process's own namespace: %v, want EPERM", err)
		}
	})

	if _, err := procfs.OpenPIDNS(-1); err == nil {
		t.Error("OpenPIDNS(-1): no error")
	}
}
