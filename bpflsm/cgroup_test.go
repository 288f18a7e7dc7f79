package bpflsm

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/bpf"
	"github.com/procgate/procgate/procfs"
)

// hookProgs are the hooks' decision as bench_hook_btf and
// bench_hook_probe make it (the caller the subject, its parent the
// target), on j's maps.
type hookProgs struct {
	BTF   *ebpf.Program `ebpf:"bench_hook_btf"`
	Probe *ebpf.Program `ebpf:"bench_hook_probe"`
	Out   *ebpf.Map     `ebpf:"bench_out"`
}

func loadHooks(tb testing.TB, j *judge) *hookProgs {
	var h hookProgs
	if err := j.spec.Copy().LoadAndAssign(&h, &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{
		"rulesets": j.rulesets, "pairsets": j.pairsets, "bench_ids": j.ids,
	}}); err != nil {
		tb.Fatalf("load bench_hook: %v", err)
	}
	tb.Cleanup(func() {
		h.BTF.Close()
		h.Probe.Close()
		h.Out.Close()
	})
	return &h
}

// denies runs prog once for access a and reports whether it denied.
func (h *hookProgs) denies(tb testing.TB, j *judge, prog *ebpf.Program, a bpf.Access) bool {
	tb.Helper()
	if err := j.ids.Put(uint32(2), ptraceIds{Euid: uint32(a)}); err != nil {
		tb.Fatal(err)
	}
	if err := h.Out.Put(uint32(0), ptraceBenchOut{}); err != nil {
		tb.Fatal(err)
	}
	if _, err := prog.Run(&ebpf.RunOptions{}); err != nil {
		tb.Fatal(err)
	}
	var out ptraceBenchOut
	if err := h.Out.Lookup(uint32(0), &out); err != nil {
		tb.Fatal(err)
	}
	if out.Judged != 1 {
		tb.Fatalf("the hook judged %d times, want 1", out.Judged)
	}
	return out.Denied == 1
}

// cgroupOf returns pid's cgroup v2 path.
func cgroupOf(tb testing.TB, pid int) string {
	tb.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		tb.Fatal(err)
	}
	p, ok := procfs.CgroupV2Path(string(b))
	if !ok {
		tb.Fatalf("no cgroup v2 line in /proc/%d/cgroup", pid)
	}
	return p
}

// TestHookCgroups runs the hooks' decision, in this machine's kernel,
// with the test process moved through real cgroups v2 and its parent
// where it is, under rule sets of each kind of cgroup selector, and
// requires the model's answer (kernel/lsm/bpf) each time: the program's
// reads of struct cgroup (ancestors[], kernfs names and ids) checked
// against the cgroup file system.
func TestHookCgroups(t *testing.T) {
	j := newJudge(t)
	h := loadHooks(t, j)
	if err := Servable(&bpf.RuleSet{Classes: []bpf.Class{{Clauses: []bpf.Clause{{Kind: bpf.KindCgroup}}}}}); err != nil {
		t.Skipf("this kernel cannot serve cgroup selectors: %v", err)
	}
	mount := procfs.Cgroup2Mount("/sys")
	if mount == "" {
		t.Skip("no cgroup v2 mount under /sys/fs/cgroup")
	}
	orig := cgroupOf(t, os.Getpid())
	baseRel := fmt.Sprintf("/procgate-test-%d", os.Getpid())
	dirs := []string{baseRel, baseRel + "/svc.service", baseRel + "/svc.service/inner", baseRel + "/other", baseRel + "/other/svc.service"}
	for _, d := range dirs {
		if err := os.Mkdir(filepath.Join(mount, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	moveTo := func(rel string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(mount, rel, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			t.Fatalf("move the test into %s: %v", rel, err)
		}
	}
	t.Cleanup(func() {
		moveTo(orig)
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := unix.Rmdir(filepath.Join(mount, dirs[i])); err != nil {
				t.Errorf("rmdir %s: %v", dirs[i], err)
			}
		}
	})
	nodes := func(rel string) []kernel.CgroupNode {
		t.Helper()
		n, err := procfs.CgroupNodes(mount, rel)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	base := nodes(baseRel)
	level := uint32(len(base) - 1)
	baseID, baseParent := base[level].ID, base[level-1].ID
	sels := []struct {
		name string
		cl   bpf.Clause
	}{
		{"svc.service itself", bpf.Clause{Cgroups: []bpf.CgroupSel{{Parent: baseID, Level: level + 1, Name: "svc.service", Self: true}}}},
		{"below svc.service", bpf.Clause{Cgroups: []bpf.CgroupSel{{Parent: baseID, Level: level + 1, Name: "svc.service", Below: true}}}},
		{"svc.service and below", bpf.Clause{Cgroups: []bpf.CgroupSel{{Parent: baseID, Level: level + 1, Name: "svc.service", Self: true, Below: true}}}},
		{"below the test's base", bpf.Clause{Cgroups: []bpf.CgroupSel{{Parent: baseParent, Level: level, Name: base[level].Name, Below: true}}}},
		{"every cgroup", bpf.Clause{Cgroups: []bpf.CgroupSel{{Root: true}}}},
		{"another parent", bpf.Clause{Cgroups: []bpf.CgroupSel{{Parent: baseID + 1<<40, Level: level + 1, Name: "svc.service", Self: true}}}},
		{"a name's prefix", bpf.Clause{Cgroups: []bpf.CgroupSel{{Parent: baseID, Level: level + 1, Name: "svc.servic", Self: true}}}},
		{"not below the base", bpf.Clause{Not: true, Cgroups: []bpf.CgroupSel{{Parent: baseParent, Level: level, Name: base[level].Name, Below: true}}}},
		{"one of two", bpf.Clause{Cgroups: []bpf.CgroupSel{{Parent: baseID, Level: level + 1, Name: "nothing", Self: true}, {Parent: baseID, Level: level + 1, Name: "other", Self: true, Below: true}}}},
	}
	parent := bpf.Match{Cgroup: nodes(cgroupOf(t, os.Getppid()))}
	var judged, denied int
	for _, place := range append([]string{orig}, dirs...) {
		moveTo(place)
		self := bpf.Match{Cgroup: nodes(place)}
		for _, sel := range sels {
			cl := sel.cl
			cl.Kind = bpf.KindCgroup
			class := []bpf.Class{{Name: sel.name, Clauses: []bpf.Clause{cl}}, {Name: "any"}}
			for _, rs := range []*bpf.RuleSet{
				{Classes: class, Rules: []bpf.Rule{{Subject: 0, Target: 1, Access: bpf.Read, Text: "deny"}}},
				{Classes: class, Rules: []bpf.Rule{{Subject: -1, Target: 0, Access: bpf.Read, Text: "protect"}}},
			} {
				j.load(t, rs)
				want := rs.Decide(self, parent, bpf.Read) != nil
				for _, p := range []struct {
					name string
					prog *ebpf.Program
				}{{"btf", h.BTF}, {"probe", h.Probe}} {
					got := h.denies(t, j, p.prog, bpf.Read)
					judged++
					if got {
						denied++
					}
					if got != want {
						t.Errorf("in %s, %s %s (%s reads): the program denies %v, the model %v", place, rs.Rules[0].Text, sel.name, p.name, got, want)
					}
				}
			}
		}
	}
	t.Logf("%d decisions in %d cgroups, %d denied", judged, len(dirs)+1, denied)
	if denied == 0 || denied == judged {
		t.Errorf("%d of %d denied: the cases do not tell the selectors apart", denied, judged)
	}
}
