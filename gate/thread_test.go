package gate_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/internal/proctest"
	"github.com/procgate/procgate/internal/testenv"
	"github.com/procgate/procgate/policy"
)

// TestThreadRequests: Request.TID answers for one thread of the process
// (its own status and stat), Request.Threads lists them, and a thread
// the process does not have is ESRCH.
func TestThreadRequests(t *testing.T) {
	testenv.RequireRoot(t, "pins processes")
	g, c := selfCaller(t, compile(t, "subject everyone { }\ntarget any { }\nallow everyone any : read { status };\n"))
	tid := proctest.LockedThread(t)
	read := func(req *gate.Request) gate.ProcResult {
		var out []gate.ProcResult
		if err := g.Read(context.Background(), c, req)(func(r *gate.ProcResult) error { out = append(out, *r); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(out) != 1 {
			t.Fatalf("%d results", len(out))
		}
		return out[0]
	}
	r := read(&gate.Request{PIDs: []int{os.Getpid()}, Items: []gate.Item{policy.ItemStatus, policy.ItemStat}, TID: tid, Threads: true})
	if r.Denial != nil || r.Items[0].Denial != nil || r.Items[1].Denial != nil {
		t.Fatalf("denied: %+v", r)
	}
	if st := r.Items[0].Text; !strings.Contains(st, "\nPid:\t"+strconv.Itoa(tid)+"\n") {
		t.Errorf("status is not the thread's:\n%s", st)
	}
	if !strings.HasPrefix(r.Items[1].Text, strconv.Itoa(tid)+" (") {
		t.Errorf("stat is not the thread's: %q", r.Items[1].Text)
	}
	if !slices.Contains(r.Threads, tid) || !slices.Contains(r.Threads, os.Getpid()) {
		t.Errorf("threads %v lack %d or %d", r.Threads, tid, os.Getpid())
	}
	r = read(&gate.Request{PIDs: []int{os.Getpid()}, Items: []gate.Item{policy.ItemStatus}, TID: proctest.NeverPID - 1})
	if r.Denial == nil || r.Denial.Errno != syscall.ESRCH {
		t.Errorf("a thread the process does not have: %+v", r.Denial)
	}
}
