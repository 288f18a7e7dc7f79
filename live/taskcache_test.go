package live

import (
	"os"
	"os/exec"
	"reflect"
	"testing"

	"github.com/procgate/procgate/procfs"
)

// TestTaskCache reads the same processes (this test, a child in its own
// user namespace, and their ancestors) through a TaskCache twice: the
// second read takes them from the cache, builds a world equal to
// an uncached read's, and a new process with another identity is read.
func TestTaskCache(t *testing.T) {
	needRoot(t)
	p, err := procfs.Open("/proc")
	if err != nil {
		t.Fatal(err)
	}
	pin, err := p.PinTask(os.Getpid())
	p.Close()
	if err != nil {
		t.Fatal(err)
	}
	id := pin.ID()
	pin.Close()
	if id == 0 {
		t.Skip("pidfds have no inode of their own on this kernel (before 6.9): nothing is cached")
	}
	ns := startCmd(t, exec.Command("unshare", "--user", "--map-root-user", "sleep", "1000"), "sleep")
	pids := []int{os.Getpid(), ns}
	var reads []int
	testHookAfterRead = func(pid int) { reads = append(reads, pid) }
	defer func() { testHookAfterRead = nil }()

	cache := NewTaskCache()
	first, err := ReadPIDs(pids, Options{Tasks: cache})
	if err != nil {
		t.Fatal(err)
	}
	if len(reads) < len(pids) {
		t.Fatalf("first read through an empty cache read %v, want at least %v", reads, pids)
	}
	reads = nil
	second, err := ReadPIDs(pids, Options{Tasks: cache})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reads {
		for _, pid := range pids {
			if r == pid {
				t.Errorf("second read read the files of pid %d again (reads %v)", pid, reads)
			}
		}
	}
	plain, err := ReadPIDs(pids, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		for name, s := range map[string]*System{"first": first, "cached": second} {
			got, want := s.World.TaskByPID(pid), plain.World.TaskByPID(pid)
			if got == nil || want == nil {
				t.Fatalf("%s read: pid %d missing", name, pid)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s read of pid %d differs from an uncached read:\n got  %+v\n want %+v", name, pid, got, want)
			}
		}
	}
	if got := second.World.TaskByPID(ns); got.Cred.UserNS == second.World.Init {
		t.Errorf("cached read put pid %d in the initial user namespace", ns)
	}

	// A process the cache has not seen is read.
	other := startCmd(t, exec.Command("sleep", "1000"), "sleep")
	reads = nil
	if _, err := ReadPIDs([]int{other}, Options{Tasks: cache}); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range reads {
		found = found || r == other
	}
	if !found {
		t.Errorf("a new process (pid %d) was not read: reads %v", other, reads)
	}
}
