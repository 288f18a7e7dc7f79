package report

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/yama"
	"github.com/procgate/procgate/live"
	"github.com/procgate/procgate/policy"
)

// Access is one question the report asks for every pair.
type Access uint8

// The accesses, in the order of [Accesses]. Read and attach are asked in
// both credential modes: the kernel's /proc files and most system calls
// use FSCREDS for reading and REALCREDS for attaching, and the two
// answers differ when a principal's filesystem and real ids differ.
const (
	// Visible: /proc/<pid> can be looked up (the hidepid= rule).
	Visible Access = iota
	// ReadFS: ptrace_may_access(PTRACE_MODE_READ_FSCREDS), the check of
	// /proc/<pid>/environ, maps, fd/, io, …
	ReadFS
	// ReadReal: PTRACE_MODE_READ_REALCREDS (kcmp, get_robust_list).
	ReadReal
	// AttachReal: PTRACE_MODE_ATTACH_REALCREDS (ptrace attach,
	// process_vm_readv, pidfd_getfd).
	AttachReal
	// AttachFS: PTRACE_MODE_ATTACH_FSCREDS (/proc/<pid>/mem).
	AttachFS
	// NumAccess is the number of accesses.
	NumAccess
)

var accessNames = [NumAccess]string{"visible", "read_fscreds", "read_realcreds", "attach_realcreds", "attach_fscreds"}

// String returns the access's name: "visible", or the ptrace mode as
// `procgate check --mode` spells it.
func (a Access) String() string {
	if a < NumAccess {
		return accessNames[a]
	}
	return "access?"
}

// Mode returns the ptrace mode of a read or attach access (0 for Visible).
func (a Access) Mode() kernel.Mode {
	switch a {
	case ReadFS:
		return kernel.ReadFSCreds
	case ReadReal:
		return kernel.ReadRealCreds
	case AttachReal:
		return kernel.AttachRealCreds
	case AttachFS:
		return kernel.AttachFSCreds
	}
	return 0
}

// IsAttach reports whether a is one of the attach accesses.
func (a Access) IsAttach() bool { return a == AttachReal || a == AttachFS }

// IsRead reports whether a is one of the read accesses.
func (a Access) IsRead() bool { return a == ReadFS || a == ReadReal }

// ParseAccess parses an access name as [Access.String] writes it.
func ParseAccess(s string) (Access, error) {
	for i, n := range accessNames {
		if n == s {
			return Access(i), nil
		}
	}
	return 0, fmt.Errorf("unknown access %q (want %s)", s, strings.Join(accessNames[:], ", "))
}

// Question returns the question access a asks, as the live check asks it.
func (a Access) Question() live.Access {
	if a == Visible {
		return live.Access{Entry: kernel.EntryPIDDir.Entry()}
	}
	return live.Access{Mode: a.Mode()}
}

// Answer is the model's answer to one access.
type Answer struct {
	Allowed bool         `json:"allowed"`
	Errno   kernel.Errno `json:"errno"`
	// Layer is the step that decided (kernel.Decision.Layer).
	Layer kernel.Layer `json:"layer"`
	// Unknown lists what the answer depends on that could not be read,
	// one sentence each (live and snapshot input only).
	Unknown []string `json:"unknown,omitempty"`
}

// Answers holds one answer per access.
type Answers [NumAccess]Answer

// Relation is what relates the two processes of a pair beyond their
// classes. The kernel's answer may depend on it (Yama's descendant rule
// and PR_SET_PTRACER exceptions, an existing tracer, a shared address
// space), so related pairs are decided one by one.
type Relation string

// The relations, joined with "+" when several hold.
const (
	Unrelated  Relation = ""
	Descendant Relation = "descendant" // the target descends from the principal
	Tracer     Relation = "tracer"     // the principal traces the target
	Exception  Relation = "ptracer"    // the target's Yama exception names the principal or an ancestor of it
	SharedMM   Relation = "shared-mm"  // the two share an address space (vfork, CLONE_VM)
)

// Edge is the answer for every pair of one principal class, one target
// class and one relation (for related pairs: one answer, since related
// pairs are decided one by one and grouped by answer).
type Edge struct {
	Principal string   `json:"principal"`
	Target    string   `json:"target"`
	Relation  Relation `json:"relation,omitempty"`
	// Pairs is how many (principal process, target process) pairs the
	// edge stands for; Example is one of them, by pid, for explain.
	Pairs   int    `json:"pairs"`
	Example [2]int `json:"example"`
	// Answers is indexed by Access.
	Answers Answers `json:"-"`
	// Grants lists the policy items the broker or the FUSE mount would
	// grant on top of the kernel (with --policy): items the kernel
	// itself would refuse the principal.
	Grants []string `json:"grants,omitempty"`

	p, t *Class
}

// Allowed reports whether access a is allowed.
func (e *Edge) Allowed(a Access) bool { return e.Answers[a].Allowed }

// Reaches reports whether any read or attach access is allowed.
func (e *Edge) Reaches() bool {
	for a := ReadFS; a < NumAccess; a++ {
		if e.Answers[a].Allowed {
			return true
		}
	}
	return false
}

// Login is a user of the passwd database, as a fresh login shell would
// run: its uid and primary gid for every id, its supplementary groups,
// no capabilities, in the initial user namespace.
type Login struct {
	Name     string
	UID, GID uint32
	Groups   []uint32
}

// Input is one machine to report on.
type Input struct {
	// Name names the machine (its host name, or the file it came from).
	Name string
	// Source says where the world comes from: "live", "scenario" or
	// "snapshot".
	Source string
	World  *kernel.World
	// Live is set for a live machine and for a snapshot (a snapshot has
	// the same unknowns: Landlock domains and Yama exceptions are not in
	// it); nil for a scenario, whose world is complete.
	Live *live.System
	// Logins are the passwd database's login users; those no process
	// runs as become principals of their own.
	Logins []Login
}

// Options tune a report.
type Options struct {
	// Policy, when set, adds what the broker or the FUSE mount would
	// grant on top of the kernel; PolicyName names it.
	Policy     *policy.Policy
	PolicyName string
	// WhatIf lists changes whose effect the report shows as a diff.
	WhatIf []WhatIf
	// Progress, when set, is called as principal classes are done.
	Progress func(done, total int)
}

// Settings are the kernel settings that shape the answers.
type Settings struct {
	Yama         int    `json:"yama"` // -1 when Yama is not active
	SuidDumpable int    `json:"suid_dumpable"`
	HidePID      string `json:"hidepid"`
}

// Machine is the report on one machine.
type Machine struct {
	Name       string   `json:"name"`
	Source     string   `json:"source"`
	Kernel     string   `json:"kernel"`
	LSMs       []string `json:"lsms"`
	Settings   Settings `json:"settings"`
	Processes  int      `json:"processes"`
	Unmodelled []string `json:"unmodelled,omitempty"`
	Policy     string   `json:"policy,omitempty"`
	// Principals and Targets are the classes; Edges every (principal,
	// target, relation) with its answers. An edge with nothing allowed
	// is kept (it says who cannot reach whom).
	Principals []*Class   `json:"principals"`
	Targets    []*Class   `json:"targets"`
	Edges      []*Edge    `json:"edges"`
	Findings   []*Finding `json:"findings"`
	WhatIf     []*Diff    `json:"what_if,omitempty"`

	w        *kernel.World
	sys      *live.System
	pol      *policy.Policy
	pclass   map[int]*Class // by tgid
	tclass   map[int]*Class
	related  map[[2]int]Relation
	edgeOf   map[edgeKey]*Edge
	relEdge  map[[2]int]*Edge     // the edge of each related pair
	tasks    map[int]*kernel.Task // process leaders by tgid
	loginRep map[*Class]*kernel.Task
	// unknownsOf holds the answers, unknowns included, of the first
	// related pair of each (classes, relation, bare answers).
	unknownsOf map[edgeKey]Answers
}

type edgeKey struct {
	p, t *Class
	rel  Relation
	ans  string // answersKey, for related pairs
}

// Build reports on one machine.
func Build(in Input, o Options) (*Machine, error) {
	m, err := build(in, o.Policy, o.PolicyName, o.Progress)
	if err != nil {
		return nil, err
	}
	m.Findings = findings(m)
	for _, wi := range o.WhatIf {
		d, err := whatIf(in, o, m, wi)
		if err != nil {
			return nil, err
		}
		m.WhatIf = append(m.WhatIf, d)
	}
	return m, nil
}

func build(in Input, pol *policy.Policy, polName string, progress func(int, int)) (*Machine, error) {
	w := in.World
	if w == nil {
		return nil, fmt.Errorf("report %s: no world", in.Name)
	}
	m := &Machine{
		Name: in.Name, Source: in.Source, Kernel: w.Release.String(),
		w: w, sys: in.Live, pol: pol, Policy: polName,
		pclass: map[int]*Class{}, tclass: map[int]*Class{},
		related: map[[2]int]Relation{}, edgeOf: map[edgeKey]*Edge{}, relEdge: map[[2]int]*Edge{}, unknownsOf: map[edgeKey]Answers{},
		tasks: map[int]*kernel.Task{}, loginRep: map[*Class]*kernel.Task{},
	}
	for _, l := range w.LSMs {
		m.LSMs = append(m.LSMs, l.Name())
	}
	m.Settings = settingsOf(w)
	if in.Live != nil {
		m.Unmodelled = in.Live.Unmodelled
	}
	// Classes, in pid order.
	procs := make([]*kernel.Task, 0, len(w.Tasks))
	for _, t := range w.Tasks {
		if t.IsLeader() || t.TGID == 0 {
			procs = append(procs, t)
		}
	}
	slices.SortFunc(procs, func(a, b *kernel.Task) int { return cmp.Compare(a.PID, b.PID) })
	m.Processes = len(procs)
	pk, tk := map[string]*Class{}, map[string]*Class{}
	for _, t := range procs {
		m.tasks[t.TGID] = t
		u := uint8(0)
		if in.Live != nil {
			u = in.Live.Uncertain(t)
		}
		mem := Member{PID: t.PID, Comm: t.AuditComm()}
		if isPrincipal(t) {
			m.pclass[t.TGID] = join(pk, &m.Principals, "p", principalKey(t, u), t, false, mem)
		}
		m.tclass[t.TGID] = join(tk, &m.Targets, "t", targetKey(t, u), t, true, mem)
	}
	for _, l := range in.Logins {
		t := loginTask(w, l)
		k := principalKey(t, 0)
		if pk[k] != nil {
			continue // a process already runs with these credentials
		}
		c := newClass(fmt.Sprintf("p%d", len(m.Principals)+1), k, t, false)
		c.Login = l.Name
		c.Label = classLabel(t, false, l.Name)
		pk[k] = c
		m.Principals = append(m.Principals, c)
		m.loginRep[c] = t
	}
	m.findRelated(procs)

	// Unrelated pairs: one decision per class pair.
	selfPairs := map[[2]*Class]int{}
	for _, t := range procs {
		if p := m.pclass[t.TGID]; p != nil {
			selfPairs[[2]*Class{p, m.tclass[t.TGID]}]++
		}
	}
	relatedPairs := map[[2]*Class]int{}
	for k := range m.related {
		relatedPairs[[2]*Class{m.pclass[k[0]], m.tclass[k[1]]}]++
	}
	for i, p := range m.Principals {
		for _, t := range m.Targets {
			n := len(p.Members)*len(t.Members) - selfPairs[[2]*Class{p, t}] - relatedPairs[[2]*Class{p, t}]
			if p.Login != "" {
				n = len(t.Members)
			}
			if n <= 0 {
				continue
			}
			c, tt, ok := m.unrelatedPair(p, t)
			if !ok {
				continue
			}
			e := m.edge(p, t, Unrelated, c, tt)
			e.Pairs += n
		}
		if progress != nil {
			progress(i+1, len(m.Principals))
		}
	}
	// Related pairs: one decision each, grouped by answer.
	keys := make([][2]int, 0, len(m.related))
	for k := range m.related {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]int) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
	for _, k := range keys {
		c, t := m.tasks[k[0]], m.tasks[k[1]]
		e := m.edge(m.pclass[k[0]], m.tclass[k[1]], m.related[k], c, t)
		e.Pairs++
		m.relEdge[k] = e
	}
	slices.SortStableFunc(m.Edges, func(a, b *Edge) int {
		return cmp.Or(cmp.Compare(classIndex(a.p), classIndex(b.p)), cmp.Compare(classIndex(a.t), classIndex(b.t)), strings.Compare(string(a.Relation), string(b.Relation)))
	})
	return m, nil
}

// join adds mem, the process of task t, to the class of key k in byKey
// and list, starting the class (id prefix and its number, t as its
// representative) when there is none; it returns the class.
func join(byKey map[string]*Class, list *[]*Class, prefix, k string, t *kernel.Task, target bool, mem Member) *Class {
	c := byKey[k]
	if c == nil {
		c = newClass(fmt.Sprintf("%s%d", prefix, len(*list)+1), k, t, target)
		byKey[k] = c
		*list = append(*list, c)
	}
	c.Members = append(c.Members, mem)
	return c
}

// classIndex is the number in a class's id ("p12" → 12).
func classIndex(c *Class) int {
	n := 0
	for _, r := range c.ID[1:] {
		n = n*10 + int(r-'0')
	}
	return n
}

// isPrincipal reports whether t can ask anything: kernel threads and
// processes past exit make no system calls.
func isPrincipal(t *kernel.Task) bool {
	return !t.Kthread && t.State == kernel.Running
}

// loginTask is the task a fresh login shell of l would be: every uid
// and gid l's, its groups, no capabilities (every one for root), the
// initial namespace,
// unconfined, and no parent in the world.
func loginTask(w *kernel.World, l Login) *kernel.Task {
	uid, gid := kernel.KUID(l.UID), kernel.KGID(l.GID)
	groups := make([]kernel.KGID, len(l.Groups))
	for i, g := range l.Groups {
		groups[i] = kernel.KGID(g)
	}
	t := &kernel.Task{
		Name: "login:" + l.Name, Comm: "login:" + l.Name,
		Cred: kernel.Cred{UID: uid, EUID: uid, SUID: uid, FSUID: uid, GID: gid, EGID: gid, SGID: gid, FSGID: gid,
			Groups: groups, UserNS: w.Init},
		MM: &kernel.MM{Dumpable: kernel.SuidDumpUser, UserNS: w.Init},
	}
	if uid == 0 {
		// A root login shell runs with the full capability sets.
		t.Cred.CapEffective, t.Cred.CapPermitted = kernel.CapSetAll, kernel.CapSetAll
	}
	t.Leader = t
	if w.LSM("apparmor") != nil {
		t.AppArmor = "unconfined"
	}
	return t
}

// findRelated records every related pair of processes.
func (m *Machine) findRelated(procs []*kernel.Task) {
	add := func(c, t *kernel.Task, r Relation) {
		if c == nil || t == nil {
			return
		}
		c, t = c.GroupLeader(), t.GroupLeader()
		if c.TGID == t.TGID || m.pclass[c.TGID] == nil || m.tasks[c.TGID] != c || m.tasks[t.TGID] != t {
			return
		}
		k := [2]int{c.TGID, t.TGID}
		old := m.related[k]
		if strings.Contains(string(old), string(r)) {
			return
		}
		if old != "" {
			parts := append(strings.Split(string(old), "+"), string(r))
			slices.Sort(parts)
			r = Relation(strings.Join(parts, "+"))
		}
		m.related[k] = r
	}
	children := map[*kernel.Task][]*kernel.Task{}
	byMM := map[*kernel.MM][]*kernel.Task{}
	for _, t := range procs {
		if t.Parent != nil {
			p := t.Parent.GroupLeader()
			children[p] = append(children[p], t)
		}
		if t.MM != nil {
			byMM[t.MM] = append(byMM[t.MM], t)
		}
	}
	var subtree func(t *kernel.Task, f func(*kernel.Task), depth int)
	subtree = func(t *kernel.Task, f func(*kernel.Task), depth int) {
		if depth > 1<<12 {
			return
		}
		f(t)
		for _, c := range children[t] {
			subtree(c, f, depth+1)
		}
	}
	for _, t := range procs {
		seen := 0
		for a := t.Parent; a != nil && a.PID > 0 && seen < 1<<12; a, seen = a.GroupLeader().Parent, seen+1 {
			add(a, t, Descendant)
		}
		add(t.Tracer, t, Tracer)
		if x := t.Ptracer; x != nil && x.Tracer != nil {
			subtree(x.Tracer.GroupLeader(), func(c *kernel.Task) { add(c, t, Exception) }, 0)
		}
	}
	for _, group := range byMM {
		for _, a := range group {
			for _, b := range group {
				add(a, b, SharedMM)
			}
		}
	}
}

// unrelatedPair returns two distinct, unrelated processes of classes p
// and t (for a login principal: its synthetic task and a member of t).
func (m *Machine) unrelatedPair(p, t *Class) (*kernel.Task, *kernel.Task, bool) {
	if lt := m.loginRep[p]; lt != nil {
		return lt, m.tasks[t.Members[0].PID], true
	}
	// Every pair visited before an unrelated one is found is the same
	// process or a related pair, so the search is bounded by their
	// number; callers ask only when such a pair exists.
	for _, a := range p.Members {
		for _, b := range t.Members {
			if a.PID != b.PID {
				if _, rel := m.related[[2]int{a.PID, b.PID}]; !rel {
					return m.tasks[a.PID], m.tasks[b.PID], true
				}
			}
		}
	}
	return nil, nil, false
}

// edge decides the pair (c, t) of classes p and t and returns the edge
// that holds the answer, creating it if needed.
func (m *Machine) edge(p, tc *Class, rel Relation, c, t *kernel.Task) *Edge {
	var ans Answers
	if rel == Unrelated || m.sys == nil {
		ans = m.answers(c, t)
	} else {
		// What a related pair's answers depend on that cannot be read is
		// fixed by its classes, its relation and the answers themselves
		// (every input of a decision is in one of them), so the unknowns
		// are found once per such group, for its first pair.
		bare := m.bareAnswers(c, t)
		k := edgeKey{p, tc, rel, answersKey(bare)}
		if known, ok := m.unknownsOf[k]; ok {
			ans = known
		} else {
			ans = m.answers(c, t)
			m.unknownsOf[k] = ans
		}
	}
	k := edgeKey{p, tc, rel, ""}
	if rel != Unrelated {
		k.ans = answersKey(ans)
	}
	if e := m.edgeOf[k]; e != nil {
		return e
	}
	e := &Edge{Principal: p.ID, Target: tc.ID, Relation: rel, Example: [2]int{c.PID, t.PID}, Answers: ans, p: p, t: tc}
	if m.pol != nil {
		e.Grants = m.grants(c, t)
	}
	m.edgeOf[k] = e
	m.Edges = append(m.Edges, e)
	return e
}

// bareAnswers decides every access for caller c and target t, without
// looking for unknowns.
func (m *Machine) bareAnswers(c, t *kernel.Task) Answers {
	var out Answers
	for a := range NumAccess {
		d := a.Question().Evaluate(m.w, c, t, false)
		out[a] = Answer{Allowed: d.Allowed, Errno: d.Errno, Layer: d.Layer}
	}
	return out
}

// answers decides every access for caller c and target t.
func (m *Machine) answers(c, t *kernel.Task) Answers {
	var out Answers
	for a := range NumAccess {
		q := a.Question()
		d := q.Evaluate(m.w, c, t, false)
		out[a] = Answer{Allowed: d.Allowed, Errno: d.Errno, Layer: d.Layer}
		if m.sys != nil && c.PID > 0 {
			out[a].Unknown = m.sys.Unknowns(c, t, q)
		}
	}
	return out
}

// grants lists the policy items granted on top of the kernel.
func (m *Machine) grants(c, t *kernel.Task) []string {
	var unmodelled []string
	if m.sys != nil {
		unmodelled = m.sys.Unmodelled
	}
	v := gate.ComputeView(m.w, unmodelled, c, t)
	s := &policy.Subject{Process: processOf(c)}
	tg := &policy.Target{Process: processOf(t), Dumpable: v.Dumpable}
	var rel policy.Relation
	if v.Descendant {
		rel = policy.RelDescendant
	}
	var out []string
	for _, it := range policy.Items() {
		vd := gate.Decide(m.pol, s, tg, rel, v, it)
		if vd.Allowed && vd.Source == gate.SourcePolicy && (!v.Kernel[it].Allowed || v.Kernel[it].Masked) {
			out = append(out, it.String())
		}
	}
	return out
}

// processOf is the policy's view of a task: effective ids, groups,
// labels. The executable, cgroup and pid namespace are not in the model.
func processOf(t *kernel.Task) policy.Process {
	groups := make([]uint32, len(t.Cred.Groups))
	for i, g := range t.Cred.Groups {
		groups[i] = uint32(g)
	}
	return policy.Process{PID: t.PID, Comm: t.AuditComm(), UID: uint32(t.Cred.EUID), GID: uint32(t.Cred.EGID),
		Groups: groups, SELinux: t.SELinux, AppArmor: t.AppArmor}
}

func settingsOf(w *kernel.World) Settings {
	s := Settings{Yama: -1, SuidDumpable: w.SuidDumpable, HidePID: w.Proc.HidePID.String()}
	if y, ok := w.LSM("yama").(*yama.Module); ok {
		s.Yama = int(y.Scope)
	}
	return s
}

// Principal returns the principal class of process pid, or nil.
func (m *Machine) Principal(pid int) *Class { return m.pclass[pid] }

// Target returns the target class of process pid, or nil.
func (m *Machine) Target(pid int) *Class { return m.tclass[pid] }

// Related returns the relation of the pair (caller, target).
func (m *Machine) Related(caller, target int) Relation { return m.related[[2]int{caller, target}] }

// Pair returns the report's answers for process caller reaching process
// target, as the report states them: the edge of their classes and
// relation. ok is false when the report has no such pair (a pid that is
// not a process of the report, a kernel thread or zombie as caller, or
// a process and itself).
func (m *Machine) Pair(caller, target int) (Answers, *Edge, bool) {
	p, t := m.pclass[caller], m.tclass[target]
	if p == nil || t == nil || caller == target {
		return Answers{}, nil, false
	}
	rel := m.related[[2]int{caller, target}]
	if rel == Unrelated {
		e := m.edgeOf[edgeKey{p, t, Unrelated, ""}]
		if e == nil {
			return Answers{}, nil, false
		}
		return e.Answers, e, true
	}
	e := m.relEdge[[2]int{caller, target}]
	if e == nil {
		return Answers{}, nil, false
	}
	return e.Answers, e, true
}

// answersKey is a comparable form of a. Of the unknowns it keeps the
// kind ("landlock", "yama", …), not the sentence, which names the pair:
// pairs that differ only in names share an edge, whose unknowns are its
// example's.
func answersKey(a Answers) string {
	var b strings.Builder
	for _, x := range a {
		fmt.Fprintf(&b, "%t %d %s", x.Allowed, x.Errno, x.Layer)
		for _, u := range x.Unknown {
			kind, _, _ := strings.Cut(u, ":")
			b.WriteString(" " + kind)
		}
		b.WriteByte(';')
	}
	return b.String()
}

// Explain returns the model's step-by-step story for the edge's example
// pair and access a.
func (m *Machine) Explain(e *Edge, a Access) kernel.Decision {
	c := m.tasks[e.Example[0]]
	if c == nil {
		c = m.loginRep[e.p]
	}
	t := m.tasks[e.Example[1]]
	d := a.Question().Evaluate(m.w, c, t, true)
	if m.sys != nil && c != nil && c.PID > 0 {
		d.Unknown = m.sys.Unknowns(c, t, a.Question())
	}
	return d
}

// World returns the world the report was built from.
func (m *Machine) World() *kernel.World { return m.w }

// Class returns the class with the given id, or nil.
func (m *Machine) Class(id string) *Class {
	list := m.Principals
	if strings.HasPrefix(id, "t") {
		list = m.Targets
	}
	for _, c := range list {
		if c.ID == id {
			return c
		}
	}
	return nil
}
