package oracle

import (
	"fmt"

	"slices"
	"strings"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/bpf"
)

// VM test profiles. Every profile grants file access and signals (the
// processes open /proc files and the Go runtime signals its own threads),
// and "capability setuid setgid" because a confined role applies its
// credentials under the profile. ptrace and the capabilities that decide
// ptrace access (sys_ptrace, dac_read_search, dac_override) vary. The
// model ignores file and signal rules.
var vmProfiles = []struct {
	name, flags, rules string
}{
	// A confined tracer without ptrace rules: abi 3.0 policy mediates
	// ptrace anyway, so it is denied everything.
	{"pg-none", "", "capability sys_ptrace dac_read_search dac_override,"},
	{"pg-read", "", "capability sys_ptrace dac_read_search dac_override,\n  ptrace (read),"},
	{"pg-trace", "", "capability sys_ptrace dac_read_search dac_override,\n  ptrace (trace),"},
	{"pg-rt", "", "capability sys_ptrace dac_read_search dac_override,\n  ptrace (read, trace),"},
	{"pg-all", "", "capability sys_ptrace dac_read_search dac_override,\n  ptrace,"},
	// Target-side profiles: who may read or trace a process in them.
	{"pg-readby", "", "ptrace (readby),"},
	{"pg-tracedby", "", "ptrace (tracedby),"},
	// A deny rule wins over the allow rule.
	{"pg-deny", "", "capability sys_ptrace dac_read_search dac_override,\n  ptrace,\n  deny ptrace (trace),"},
	// Peer globs and exact peers.
	{"pg-glob", "", "capability sys_ptrace dac_read_search dac_override,\n  ptrace (read, trace) peer=pg-r*,\n  ptrace (readby, tracedby) peer=pg-{all,glob},"},
	{"pg-exact", "", "capability sys_ptrace dac_read_search dac_override,\n  ptrace (read) peer=pg-readby,\n  ptrace (read, trace) peer=pg-all,"},
	{"pg-uncpeer", "", "capability sys_ptrace dac_read_search dac_override,\n  ptrace (read, trace) peer=unconfined,"},
	// Every ptrace permission but no capability rules: CAP_SYS_PTRACE
	// and the DAC overrides are refused by the profile.
	{"pg-nocap", "", "ptrace,"},
	{"pg-audit", "", "capability sys_ptrace dac_read_search dac_override,\n  audit ptrace (read),\n  ptrace (readby),"},
	// Complain mode allows (and logs) what it does not grant.
	{"pg-complain", "complain", ""},
	// An unconfined-mode profile confines nothing: its tasks count as
	// unconfined on both sides.
	{"pg-unconf", "unconfined", ""},
}

// VMAppArmorProfiles returns the profile text the VM cases use, compiled
// for abi 3.0.
func VMAppArmorProfiles() string {
	var b strings.Builder
	b.WriteString("abi <abi/3.0>,\n")
	for _, p := range vmProfiles {
		flags := ""
		if p.flags != "" {
			flags = " flags=(" + p.flags + ")"
		}
		fmt.Fprintf(&b, "\nprofile %s%s {\n  file,\n  signal,\n  capability setuid setgid,\n", p.name, flags)
		if p.rules != "" {
			fmt.Fprintf(&b, "  %s\n", p.rules)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// confined returns c running under profile.
func confined(c Creds, profile string) Creds {
	c.AppArmor = profile
	return c
}

func aaName(profile string) string {
	if profile == "" {
		return "unconfined"
	}
	return profile
}

// vmAppArmorCases pairs tracer and tracee profiles for a few prober
// credentials (S12 in the oracle notes).
func vmAppArmorCases() []Case {
	labels := []string{""}
	for _, p := range vmProfiles {
		labels = append(labels, p.name)
	}
	user, other := User(1000, 1000), User(2000, 2000)
	groups := []labelGroup{
		// Every tracer label against every tracee label.
		{"same-uid", user, user, labels, labels},
		// Root passes commoncap only through CAP_SYS_PTRACE, which the
		// profile must grant as well.
		{"root-vs-uid", Root(FullCaps()), user, []string{"", "pg-none", "pg-read", "pg-trace", "pg-rt", "pg-all", "pg-deny", "pg-nocap", "pg-complain", "pg-unconf"}, labels},
		{"sys_ptrace-vs-uid", other.WithCaps(CapMask(CapSysPtrace), CapMask(CapSysPtrace)), user,
			[]string{"", "pg-rt", "pg-all", "pg-nocap"}, []string{"", "pg-none", "pg-readby", "pg-all"}},
		{"other-uid", other, user, []string{"", "pg-all"}, []string{"", "pg-all"}},
	}
	return labelPairs("apparmor", groups, user, []string{"pg-none", "pg-rt"}, confined, aaName)
}

// labelGroup is a set of cases that differ only in the labels of the
// prober (tracers) and the target (tracees).
type labelGroup struct {
	name             string
	prober, target   Creds
	tracers, tracees []string
}

// labelPairs returns, for each group, a case for every tracer × tracee
// label, then a self case of self running under each of selfLabels.
// label puts a label on credentials; show names one in case names.
func labelPairs(module string, groups []labelGroup, self Creds, selfLabels []string, label func(Creds, string) Creds, show func(string) string) []Case {
	var cases []Case
	for _, g := range groups {
		for _, tr := range g.tracers {
			for _, te := range g.tracees {
				cases = append(cases, Case{
					Name:   fmt.Sprintf("%s %s: %s -> %s", module, g.name, show(tr), show(te)),
					Prober: label(g.prober, tr),
					Target: label(g.target, te),
				})
			}
		}
	}
	for _, l := range selfLabels {
		cases = append(cases, Case{Name: module + " self: " + l, Prober: label(self, l), Relation: RelSelf})
	}
	return cases
}

// vmAppArmorYamaCases mix AppArmor with Yama's relational scope: Yama
// comes before AppArmor in the LSM order, so its EPERM wins.
func vmAppArmorYamaCases() []Case {
	user := User(1000, 1000)
	var cases []Case
	for _, pr := range []struct {
		name string
		c    Creds
	}{{"uid", user}, {"root", Root(FullCaps())}} {
		for _, tr := range []string{"", "pg-rt", "pg-all"} {
			for _, te := range []string{"", "pg-all"} {
				cases = append(cases, Case{
					Name:   fmt.Sprintf("apparmor+yama %s: %s -> %s", pr.name, aaName(tr), aaName(te)),
					Prober: confined(pr.c, tr),
					Target: confined(user, te),
				})
			}
		}
	}
	for _, tr := range []string{"pg-rt", "pg-none"} {
		cases = append(cases, Case{
			Name:     "apparmor+yama ptracer-any: " + tr + " -> unconfined",
			Prober:   confined(user, tr),
			Target:   user,
			Relation: RelPtracerAny,
		})
	}
	return cases
}

// vmYamaCases are the relations Yama distinguishes (S11): siblings,
// prober-is-parent, PR_SET_PTRACER_ANY, CAP_SYS_PTRACE (effective or
// only permitted), root with and without capabilities, user-namespace
// owners, and Landlock next to Yama.
func vmYamaCases() []Case {
	u1, u2 := User(1000, 1000), User(2000, 2000)
	sp := CapMask(CapSysPtrace)
	root, rootNoCaps := Root(FullCaps()), Root(0)
	nd := func(c Creds) Creds { c.Dumpable = 0; return c }
	owned := UserNS{Kind: NSOwned, Owner: 1000, OwnerGID: 1000}
	rootNS := UserNS{Kind: NSRoot, Base: 100000}
	fsOther := u1
	fsOther.FSUID = 2000
	gidOther := User(1000, 2000)
	return []Case{
		{Name: "sibling same uid", Prober: u1, Target: u1},
		{Name: "sibling other uid", Prober: u2, Target: u1},
		{Name: "sibling other gid", Prober: u1, Target: gidOther},
		{Name: "sibling fsuid mismatch", Prober: fsOther, Target: u1},
		{Name: "parent same uid", Prober: u1, Target: u1, Relation: RelParent},
		{Name: "parent other uid", Prober: u2, Target: u1, Relation: RelParent},
		{Name: "parent non-dumpable", Prober: u1, Target: nd(u1), Relation: RelParent},
		{Name: "parent root", Prober: root, Target: u1, Relation: RelParent},
		{Name: "ptracer-any same uid", Prober: u1, Target: u1, Relation: RelPtracerAny},
		{Name: "ptracer-any other uid", Prober: u2, Target: u1, Relation: RelPtracerAny},
		{Name: "ptracer-any sys_ptrace", Prober: u2.WithCaps(sp, sp), Target: u1, Relation: RelPtracerAny},
		{Name: "ptracer-any non-dumpable", Prober: u1, Target: nd(u1), Relation: RelPtracerAny},
		{Name: "sys_ptrace same uid", Prober: u1.WithCaps(sp, sp), Target: u1},
		{Name: "sys_ptrace other uid", Prober: u2.WithCaps(sp, sp), Target: u1},
		{Name: "sys_ptrace permitted only", Prober: u1.WithCaps(0, sp), Target: u1},
		{Name: "sys_ptrace non-dumpable", Prober: u1.WithCaps(sp, sp), Target: nd(u1)},
		{Name: "root -> uid", Prober: root, Target: u1},
		{Name: "root -> root", Prober: root, Target: root},
		{Name: "root -> root non-dumpable", Prober: root, Target: nd(root)},
		{Name: "root without caps -> root without caps", Prober: rootNoCaps, Target: rootNoCaps},
		{Name: "root without caps -> uid", Prober: rootNoCaps, Target: u1},
		{Name: "ns owner -> ns root", Prober: u1, Target: Root(FullCaps()).InNS(owned)},
		{Name: "ns owner -> ns root non-dumpable", Prober: u1, Target: nd(Root(FullCaps()).InNS(owned))},
		{Name: "ns owner -> ns root without caps", Prober: u1, Target: Root(0).InNS(owned)},
		{Name: "root -> root-made ns", Prober: root, Target: Root(FullCaps()).InNS(rootNS)},
		{Name: "same kuid -> uid in root-made ns", Prober: User(101000, 101000), Target: User(1000, 1000).InNS(rootNS)},
		{Name: "ns root -> parent ns same kuid", Prober: Root(FullCaps()).InNS(owned), Target: u1},
		{Name: "landlock shared", Prober: u1, Target: u1, Landlock: LandlockShared},
		{Name: "landlock nested", Prober: u1, Target: u1, Landlock: LandlockNested},
		{Name: "landlock prober-only", Prober: u1, Target: u1, Landlock: LandlockProberOnly},
		{Name: "landlock shared sys_ptrace", Prober: u2.WithCaps(sp, sp), Target: u1, Landlock: LandlockShared},
	}
}

// VMFeatureCases tell apart the release-dependent rules (kernel.Features)
// that the other cases cannot: a CAP_PERFMON or CAP_SYS_ADMIN caller
// reading another uid's maps (PerfmonMMAccess, v6.15), and targets that
// exited and are probed as zombies — no mm, no files — by a same-uid
// caller (UserDumpable: the saved dumpable flag decides), a caller with
// CAP_SYS_PTRACE, and root (ProcMemESRCH: environ, auxv and mem fail with
// ESRCH instead of opening empty; PidfdGetfdESRCH: ESRCH instead of
// EBADF). The live-target cases elsewhere tell FdinfoCheck and
// NSLinkEmpty apart.
func VMFeatureCases() []Case {
	cases := vmFeatureCases()
	for i := range cases {
		if cases[i].TargetExits {
			cases[i].Probes = exitedTargetProbes
		}
	}
	return cases
}

// exitedTargetProbes are the probes of the exited-target cases: all of
// them (fdinfo/0 of a zombie fails with ENOENT: it has no file table).
var exitedTargetProbes = AllProbes

func vmFeatureCases() []Case {
	u1, u2 := User(1000, 1000), User(2000, 2000)
	nd := func(c Creds) Creds { c.Dumpable = 0; return c }
	sp := CapMask(CapSysPtrace)
	perfmon, sysAdmin := CapMask(CapPerfmon), CapMask(CapSysAdmin)
	root := Root(FullCaps())
	return []Case{
		{Name: "perfmon -> other uid", Prober: u2.WithCaps(perfmon, perfmon), Target: u1},
		{Name: "sys_admin -> other uid", Prober: u2.WithCaps(sysAdmin, sysAdmin), Target: u1},
		{Name: "perfmon -> non-dumpable same uid", Prober: u1.WithCaps(perfmon, perfmon), Target: nd(u1)},
		{Name: "exited: same uid", Prober: u1, Target: u1, TargetExits: true},
		{Name: "exited: non-dumpable same uid", Prober: u1, Target: nd(u1), TargetExits: true},
		{Name: "exited: other uid", Prober: u2, Target: u1, TargetExits: true},
		{Name: "exited: sys_ptrace -> non-dumpable other uid", Prober: u2.WithCaps(sp, sp), Target: nd(u1), TargetExits: true},
		{Name: "exited: root -> uid", Prober: root, Target: u1, TargetExits: true},
		{Name: "exited: root -> non-dumpable uid", Prober: root, Target: nd(u1), TargetExits: true},
		{Name: "exited: root -> root-made ns", Prober: root, Target: Root(FullCaps()).InNS(UserNS{Kind: NSRoot, Base: 100000}), TargetExits: true},
	}
}

// VMDefaultPlan is the plan the VM verification runs: the feature cases
// (VMFeatureCases) and the AppArmor cases at Yama scope 0, AppArmor with
// Yama scope 1, then the Yama cases at scopes 0, 1, 2 and finally 3
// (which cannot be lowered again).
func VMDefaultPlan() VMPlan {
	plan := VMPlan{AppArmor: VMAppArmorProfiles(), Workers: 2}
	plan.Steps = append(plan.Steps,
		VMStep{Name: "features", YamaScope: 0, Cases: VMFeatureCases()},
		VMStep{Name: "apparmor", YamaScope: 0, Cases: vmAppArmorCases()},
		VMStep{Name: "apparmor+yama1", YamaScope: 1, Cases: vmAppArmorYamaCases()},
	)
	plan.Steps = append(plan.Steps, VMStep{Name: "bpf", YamaScope: 0, BPF: VMBPFRules(), Cases: append(vmYamaCases(), vmBPFCases()...)})
	for scope := range 4 {
		plan.Steps = append(plan.Steps, VMStep{Name: fmt.Sprintf("yama%d", scope), YamaScope: scope, Cases: vmYamaCases()})
	}
	return plan
}

// vmBPFCases are the bpf step's cases besides the Yama ones: callers
// with supplementary groups (the program reads them from the cred's
// group_info) and a gid the class excludes.
func vmBPFCases() []Case {
	sp := CapMask(CapSysPtrace)
	grouped := func(uid, gid uint32, groups ...uint32) Creds {
		c := User(uid, gid).WithCaps(sp, sp)
		c.Groups = groups
		return c
	}
	u1 := User(1000, 1000)
	return []Case{
		{Name: "bpf: supplementary group 3000 -> uid 1000", Prober: grouped(1700, 1700, 3000), Target: u1},
		{Name: "bpf: supplementary groups 10 and 3000 -> uid 1000", Prober: grouped(1700, 1700, 10, 3000), Target: u1},
		{Name: "bpf: group 3000 but gid 1500 -> uid 1000", Prober: grouped(1500, 1500, 3000), Target: u1},
		{Name: "bpf: supplementary group 2000 -> uid 1000", Prober: grouped(1700, 1700, 2000), Target: u1},
	}
}

// vmSelfExe in an exe clause of VMBPFRules stands for the binary the
// oracle's processes run, which only the VM knows: init puts the
// binary's identity in its place (withSelfExe) before attaching.
var vmSelfExe = kernel.FileID{}

// withSelfExe returns a copy of rs with every vmSelfExe replaced by exe.
func withSelfExe(rs *bpf.RuleSet, exe kernel.FileID) *bpf.RuleSet {
	out := *rs
	out.Classes = make([]bpf.Class, len(rs.Classes))
	for i, c := range rs.Classes {
		c.Clauses = append([]bpf.Clause(nil), c.Clauses...)
		for j := range c.Clauses {
			exes := append([]kernel.FileID(nil), c.Clauses[j].Exes...)
			for k := range exes {
				if exes[k] == vmSelfExe {
					exes[k] = exe
				}
			}
			c.Clauses[j].Exes = exes
		}
		out.Classes[i] = c
	}
	return &out
}

// vmCasesCgroup is the name of the cgroup, a child of the root, the
// oracle's processes run in (vmCgroups).
const vmCasesCgroup = "procgate-cases"

// WithoutCgroups returns rs without its classes that have a cgroup
// clause, nor their rules: the rule set a kernel that refuses cgroup
// selectors enforces in the VM's bpf step.
func WithoutCgroups(rs *bpf.RuleSet) *bpf.RuleSet {
	out := *rs
	out.Classes, out.Rules = nil, nil
	index := make([]int, len(rs.Classes))
	for i, c := range rs.Classes {
		index[i] = -1
		if !c.Reads(bpf.KindCgroup) {
			index[i] = len(out.Classes)
			out.Classes = append(out.Classes, c)
		}
	}
	for _, r := range rs.Rules {
		if index[r.Target] < 0 || r.Subject >= 0 && index[r.Subject] < 0 {
			continue
		}
		r.Target = index[r.Target]
		if r.Subject >= 0 {
			r.Subject = index[r.Subject]
		}
		out.Rules = append(out.Rules, r)
	}
	return &out
}

// VMGuardedUID is the uid of the process the reload-under-load check
// reads (VMReload): VMBPFRules protects it from every reader.
const VMGuardedUID = 3333

// VMBPFRules is the rule set procgate's BPF LSM program enforces in the
// VM's bpf step, over the Yama cases (vmYamaCases) at scope 0: each rule
// denies something the kernel's own rules allow in some case — root's
// attach to uid 1000 (root holds CAP_SYS_PTRACE), a uid-2000 caller's
// read of uid 1000 (with CAP_SYS_PTRACE: a cap clause on the permitted
// set, 64 bits in two u32 before 6.3), any read of processes with
// kuids 100000-100999 (a root-made user namespace's: protect, which
// refuses root too), and attach to uid 1000 by everyone but root and uid
// 2000 (same-uid attach), attach to it by group 2000 (effective or
// supplementary) and reads of it by group 3000 unless the gid is 1500 —
// through positive and negated uid, gid and group clauses — and, through
// exe clauses naming the oracle's own binary, root's attach to root (by
// the binary root runs) and reads of processes of any other binary (none
// here: a wrong exe match would refuse them), and, through cgroup
// clauses (a path, a path and its descendants, every cgroup), reads of
// uid 1000 by uid 1000 in the cases' cgroup, attach to processes outside
// it (none here: a wrong cgroup match would refuse them) and attach to
// uid 1000 by uid 2000 in any cgroup, and, through pid namespace clauses
// (the policy's container selectors), root's attach to root by the
// oracle's binary only in the initial pid namespace (where every case
// runs: a wrong read would let it through) and attach to processes in
// any other (none: a wrong read would refuse it). A kernel without struct cgroup's
// ancestors[] (before 6.0) refuses cgroup selectors: there the step
// runs without those classes (WithoutCgroups) and records the refusal.
// Init, which reads every process it starts, runs in the cgroup the
// program exempts (vmCgroups), as the broker's reader would. Processes of
// uid VMGuardedUID are protected from every reader: the reload-under-load
// check (VMReload) reads one while the rule set is swapped.
func VMBPFRules() *bpf.RuleSet {
	uid := func(lo, hi uint32) bpf.Clause {
		return bpf.Clause{Kind: bpf.KindUID, IDs: []bpf.IDRange{{Lo: lo, Hi: hi}}}
	}
	not := func(c bpf.Clause) bpf.Clause { c.Not = true; return c }
	// The initial pid namespace (PROC_PID_INIT_INO), where every case runs.
	hostPIDNS := bpf.Clause{Kind: bpf.KindPIDNS, IDs: []bpf.IDRange{{Lo: 0xEFFFFFFC, Hi: 0xEFFFFFFC}}}
	// The cases' cgroup (vmCgroups), a child of the root (id 1).
	cases := func(self, below bool) bpf.Clause {
		return bpf.Clause{Kind: bpf.KindCgroup, Cgroups: []bpf.CgroupSel{{Parent: 1, Level: 1, Name: vmCasesCgroup, Self: self, Below: below}}}
	}
	return &bpf.RuleSet{
		Classes: []bpf.Class{
			{Name: "uid1000", Clauses: []bpf.Clause{uid(1000, 1000)}},
			{Name: "root", Clauses: []bpf.Clause{uid(0, 0)}},
			{Name: "uid2000", Clauses: []bpf.Clause{uid(2000, 2000), {Kind: bpf.KindCap, Caps: kernel.CapsOf(kernel.CapSysPtrace)}}},
			{Name: "nsroot", Clauses: []bpf.Clause{uid(100000, 100999)}},
			{Name: "others", Clauses: []bpf.Clause{not(uid(0, 0)), not(uid(2000, 2000))}},
			{Name: "guarded", Clauses: []bpf.Clause{uid(VMGuardedUID, VMGuardedUID)}},
			{Name: "group2000", Clauses: []bpf.Clause{{Kind: bpf.KindGroup, IDs: []bpf.IDRange{{Lo: 2000, Hi: 2000}}}}},
			{Name: "group3000-not-gid1500", Clauses: []bpf.Clause{
				{Kind: bpf.KindGroup, IDs: []bpf.IDRange{{Lo: 3000, Hi: 3000}}},
				{Kind: bpf.KindGID, Not: true, IDs: []bpf.IDRange{{Lo: 1500, Hi: 1500}}},
			}},
			{Name: "oracle-root", Clauses: []bpf.Clause{{Kind: bpf.KindExe, Exes: []kernel.FileID{vmSelfExe}}, uid(0, 0), hostPIDNS}},
			{Name: "not-oracle", Clauses: []bpf.Clause{{Kind: bpf.KindExe, Not: true, Exes: []kernel.FileID{vmSelfExe}}}},
			{Name: "cases-uid1000", Clauses: []bpf.Clause{cases(true, false), uid(1000, 1000)}},
			{Name: "outside-cases", Clauses: []bpf.Clause{not(cases(true, true))}},
			{Name: "any-cgroup-uid2000", Clauses: []bpf.Clause{{Kind: bpf.KindCgroup, Cgroups: []bpf.CgroupSel{{Root: true}}}, uid(2000, 2000)}},
			{Name: "in-a-container", Clauses: []bpf.Clause{not(hostPIDNS)}},
		},
		Rules: []bpf.Rule{
			{Subject: 1, Target: 0, Access: bpf.Attach, Text: "deny root uid1000 : attach"},
			{Subject: 2, Target: 0, Access: bpf.Read, Text: "deny uid2000 uid1000 : read"},
			{Subject: -1, Target: 3, Access: bpf.Read, Text: "protect nsroot : read"},
			{Subject: 4, Target: 0, Access: bpf.Attach, Text: "deny others uid1000 : attach"},
			{Subject: -1, Target: 5, Access: bpf.Read, Text: "protect guarded : read"},
			{Subject: -1, Target: 5, Access: bpf.Attach, Text: "protect guarded : attach"},
			{Subject: 6, Target: 0, Access: bpf.Attach, Text: "deny group2000 uid1000 : attach"},
			{Subject: 7, Target: 0, Access: bpf.Read, Text: "deny group3000-not-gid1500 uid1000 : read"},
			{Subject: 8, Target: 1, Access: bpf.Attach, Text: "deny oracle-root root : attach"},
			{Subject: -1, Target: 9, Access: bpf.Read, Text: "protect not-oracle : read"},
			{Subject: 10, Target: 0, Access: bpf.Read, Text: "deny cases-uid1000 uid1000 : read"},
			{Subject: -1, Target: 11, Access: bpf.Attach, Text: "protect outside-cases : attach"},
			{Subject: 12, Target: 0, Access: bpf.Attach, Text: "deny any-cgroup-uid2000 uid1000 : attach"},
			{Subject: -1, Target: 13, Access: bpf.Attach, Text: "protect in-a-container : attach"},
		},
		Generation: 1,
	}
}

// VMLargeRules is how many hashed rules the VM's bpf step adds to its
// rule set for the cost of a large one (WithHashedRules).
const VMLargeRules = 10000

// WithHashedRules returns rs with n more rules, each denying one uid
// another's READ access (uids from 200000, which no case runs as): rules
// the program hashes (bpf.Layout).
func WithHashedRules(rs *bpf.RuleSet, n int) *bpf.RuleSet {
	out := *rs
	out.Classes = slices.Clone(rs.Classes)
	out.Rules = slices.Clone(rs.Rules)
	for i := range n {
		s, t := uint32(200000+2*i), uint32(200001+2*i)
		out.Classes = append(out.Classes,
			bpf.Class{Name: fmt.Sprintf("u%d", s), Clauses: []bpf.Clause{{Kind: bpf.KindUID, IDs: []bpf.IDRange{{Lo: s, Hi: s}}}}},
			bpf.Class{Name: fmt.Sprintf("u%d", t), Clauses: []bpf.Clause{{Kind: bpf.KindUID, IDs: []bpf.IDRange{{Lo: t, Hi: t}}}}})
		out.Rules = append(out.Rules, bpf.Rule{Subject: len(out.Classes) - 2, Target: len(out.Classes) - 1, Access: bpf.Read,
			Text: fmt.Sprintf("deny u%d u%d : read", s, t)})
	}
	return &out
}
