package procfs_test

import (
	"os"
	"os/exec"
	"testing"

	"github.com/procgate/procgate/procfs"
)

// TestPinID: a process keeps its identity across pins; another process,
// even one that took a pid at once, has another (where pidfds are on
// pidfs, Linux 6.9+; 0 everywhere before).
func TestPinID(t *testing.T) {
	r, err := procfs.Open("/proc")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	pin := func(pid int) *procfs.Pin {
		p, err := r.Pin(pid)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	self1, self2 := pin(os.Getpid()), pin(os.Getpid())
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	other := pin(cmd.Process.Pid)
	if self1.ID() != self2.ID() {
		t.Errorf("one process, two identities: %d, %d", self1.ID(), self2.ID())
	}
	if self1.ID() == 0 {
		t.Skip("pidfds are not on pidfs here (Linux < 6.9): no identity") // the test above still ran
	}
	if other.ID() == self1.ID() {
		t.Errorf("two processes share the identity %d", other.ID())
	}
}
