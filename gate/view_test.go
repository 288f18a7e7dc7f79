package gate

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/live"
	"github.com/procgate/procgate/policy"
)

// TestViewCacheBounded: views are interned across pairs, a caller's
// views go with its last Close, and the cache never holds more than max
// entries.
func TestViewCacheBounded(t *testing.T) {
	vc := newViewCache(time.Hour, 4)
	a, b := taskKey{pid: 1}, taskKey{pid: 2}
	vc.ref(a)
	vc.ref(a)
	vc.ref(b)
	view := func(reason string) *View {
		return &View{Kernel: make([]KernelAnswer, 2), MAC: []MACAnswer{{Denied: reason != "", Reason: reason}, {}}}
	}
	vc.put(pairKey{a, taskKey{pid: 10}}, view("x"), 0)
	vc.put(pairKey{b, taskKey{pid: 10}}, view("x"), 0)
	vc.put(pairKey{b, taskKey{pid: 11}}, view("y"), 0)
	if vc.get(pairKey{a, taskKey{pid: 10}}) != vc.get(pairKey{b, taskKey{pid: 10}}) {
		t.Error("equal views are not shared")
	}
	if vc.get(pairKey{b, taskKey{pid: 10}}) == vc.get(pairKey{b, taskKey{pid: 11}}) {
		t.Error("different views are shared")
	}
	if n := vc.size(); n != 3 {
		t.Fatalf("size %d, want 3", n)
	}
	vc.unref(a) // a has another Caller open
	if vc.get(pairKey{a, taskKey{pid: 10}}) == nil {
		t.Error("views dropped while the caller is still connected")
	}
	vc.unref(a)
	if vc.get(pairKey{a, taskKey{pid: 10}}) != nil || vc.size() != 2 {
		t.Errorf("views kept after the caller's last Close (size %d)", vc.size())
	}
	for i := range 10 {
		vc.put(pairKey{b, taskKey{pid: 100 + i}}, view("z"), 0)
		if vc.size() > 4 {
			t.Fatalf("size %d > max 4", vc.size())
		}
	}
	vc.flush()
	vc.put(pairKey{b, taskKey{pid: 10}}, view(""), 0)
	vc.unref(b)
	if vc.size() != 0 || len(vc.callers) != 0 {
		t.Errorf("after flush and the last Close: size %d, %d callers", vc.size(), len(vc.callers))
	}
	// A view computed for a caller that closed meanwhile is not kept.
	vc.put(pairKey{a, taskKey{pid: 10}}, view(""), 0)
	if vc.size() != 0 || len(vc.callers) != 0 {
		t.Errorf("view kept for a closed caller: size %d, %d callers", vc.size(), len(vc.callers))
	}
	// The signature separates fields: no two views collide by
	// concatenation.
	v1 := &View{Kernel: []KernelAnswer{{Layer: "ab"}, {Layer: ""}}}
	v2 := &View{Kernel: []KernelAnswer{{Layer: "a"}, {Layer: kernel.Layer("b")}}}
	if v1.signature() == v2.signature() {
		t.Error("signatures collide")
	}
}

// TestItemsReadUnderPin: exe, cgroup and fd_count, answered from what
// the gate read while identifying the target, equal a direct read.
func TestItemsReadUnderPin(t *testing.T) {
	g, c := selfGate(t, loadPolicy(t, "subject everyone { }\ntarget any_process { }\nallow everyone any_process : read { exe cgroup fd_count status };\n"))
	items := []Item{policy.ItemExe, policy.ItemCgroup, policy.ItemFdCount}
	var got *ProcResult
	err := g.Read(context.Background(), c, &Request{PIDs: []int{os.Getpid()}, Items: items})(func(r *ProcResult) error {
		got = r
		return nil
	})
	if err != nil || got == nil || got.Denial != nil {
		t.Fatalf("read: %v %+v", err, got)
	}
	exe, _ := os.Readlink("/proc/self/exe")
	cg, _ := os.ReadFile("/proc/self/cgroup")
	for _, ir := range got.Items {
		if ir.Denial != nil {
			t.Errorf("%s denied: %v", ir.Item, ir.Denial)
			continue
		}
		switch ir.Item {
		case policy.ItemExe:
			if ir.Text != exe {
				t.Errorf("exe = %q, want %q", ir.Text, exe)
			}
		case policy.ItemCgroup:
			if ir.Text != string(cg) || !strings.HasSuffix(ir.Text, "\n") {
				t.Errorf("cgroup = %q, want %q", ir.Text, cg)
			}
		case policy.ItemFdCount:
			if ir.Count <= 0 {
				t.Errorf("fd_count = %d", ir.Count)
			}
		}
	}
}

func loadPolicy(t *testing.T, src string) *policy.Policy {
	t.Helper()
	p, err := policy.Load("t.pol", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// selfGate opens a gate with pol and this process as its caller; both
// close when the test ends.
func selfGate(t *testing.T, pol *policy.Policy) (*Gate, *Caller) {
	t.Helper()
	g, err := New(Config{Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	c, err := g.NewCaller(os.Getpid(), -1, uint32(os.Getuid()), uint32(os.Getgid()), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return g, c
}

// TestKernelInfoKept: the kernel-wide facts are read at the first miss
// and kept with the views until they are flushed, expire or the stamp
// (the BPF rule set's mirror) changes.
func TestKernelInfoKept(t *testing.T) {
	stamp := uint64(1)
	vc := newViewCache(time.Hour, 4)
	vc.stamp = func() uint64 { return stamp }
	vc.stampAt = stamp
	read := func() *live.KernelInfo {
		t.Helper()
		k, err := vc.kernelInfo(live.Options{})
		if err != nil || k == nil || k.Release == "" {
			t.Fatalf("kernelInfo: %v, %v", k, err)
		}
		return k
	}
	k := read()
	if read() != k {
		t.Error("read again before any flush")
	}
	vc.flush()
	if k2 := read(); k2 == k {
		t.Error("kept across a flush (SIGHUP)")
	} else {
		k = k2
	}
	stamp++
	if k2 := read(); k2 == k {
		t.Error("kept across a change of the BPF rule set")
	} else {
		k = k2
	}
	vc.ttl = time.Nanosecond
	if read() == k {
		t.Error("kept past the time to live")
	}
}
