package report

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/policy"
)

// Severity ranks a finding.
type Severity string

// The severities, most urgent first.
const (
	High   Severity = "high"
	Medium Severity = "medium"
	Low    Severity = "low"
)

func (s Severity) order() int {
	switch s {
	case High:
		return 0
	case Medium:
		return 1
	}
	return 2
}

// The kinds of finding.
const (
	// KindAttachPrivileged: a principal can attach to processes that hold
	// capabilities it lacks or run as root.
	KindAttachPrivileged = "attach-privileged"
	// KindAttachOtherUID: a principal can attach to processes of another
	// user.
	KindAttachOtherUID = "attach-other-uid"
	// KindNondumpable: a non-dumpable or set-id process can still be read
	// or attached to by a principal other than an administrator.
	KindNondumpable = "nondumpable-reachable"
	// KindYamaZero: an attach edge exists only because Yama's
	// ptrace_scope is 0 (or Yama is not active): scope 1 would remove it.
	KindYamaZero = "yama-zero"
	// KindContainer: a process in another user or pid namespace can be
	// reached from outside it by a principal that does not own it.
	KindContainer = "container-reachable"
	// KindBrokerExceeds: the broker policy grants items the kernel would
	// refuse the principal.
	KindBrokerExceeds = "broker-exceeds"
)

// Kinds lists every kind of finding.
var Kinds = []string{KindAttachPrivileged, KindAttachOtherUID, KindNondumpable, KindYamaZero, KindContainer, KindBrokerExceeds}

// maxFindings bounds the findings kept per machine; Counts always counts
// all of them.
const maxFindings = 1000

// Finding is one thing an auditor should look at, with the story of one
// pair that shows it.
type Finding struct {
	Rank           int      `json:"rank"`
	Severity       Severity `json:"severity"`
	Kind           string   `json:"kind"`
	Title          string   `json:"title"`
	Principal      string   `json:"principal"`
	PrincipalLabel string   `json:"principal_label"`
	Target         string   `json:"target"`
	TargetLabel    string   `json:"target_label"`
	Relation       Relation `json:"relation,omitempty"`
	Access         string   `json:"access"`
	Pairs          int      `json:"pairs"`
	// Example is the pair the story is about, by pid (0 for a login
	// principal without a process).
	Example [2]int `json:"example"`
	// Answer and Story are the model's decision for the example pair,
	// step by step, as `procgate explain` tells it; Unknown what it
	// depends on that could not be read.
	Answer  string        `json:"answer"`
	Story   []kernel.Step `json:"story"`
	Unknown []string      `json:"unknown,omitempty"`
	// Grants lists the items a broker-exceeds finding is about.
	Grants []string `json:"grants,omitempty"`
}

// admin reports whether principal class p is an administrator: root of
// the initial user namespace with CAP_SYS_PTRACE, for whom reaching
// everything is the design.
func admin(p *Class) bool {
	t := p.rep
	return t.Cred.EUID == 0 && t.Cred.UserNS.IsInit() && t.Cred.CapEffective.Has(kernel.CapSysPtrace)
}

// privilegedOver reports whether target t holds something principal p
// does not: a capability outside p's effective set, or root's uid.
func privilegedOver(p, t *kernel.Task) bool {
	return !t.Cred.CapEffective.SubsetOf(p.Cred.CapEffective) || !t.Cred.CapPermitted.SubsetOf(p.Cred.CapPermitted) ||
		t.Cred.EUID == 0 && p.Cred.EUID != 0
}

// outside reports whether principal p lives outside user namespace ns:
// not in it nor in one of its descendants.
func outside(p *kernel.Task, ns *kernel.UserNS) bool {
	for x := p.Cred.UserNS; x != nil; x = x.Parent {
		if x == ns {
			return false
		}
	}
	return true
}

// container reports whether target t lives in a container that
// principal p is outside of and does not own, and names it: a user
// namespace other than the initial one that p is neither in (nor below)
// nor owns, or a descendant pid namespace p is not in (owned by the
// owner of t's user namespace when that is not the initial one).
func container(p, t *kernel.Task) (string, bool) {
	ns := t.Cred.UserNS
	owned := ns != nil && !ns.IsInit() && p.Cred.EUID == ns.Owner
	if ns != nil && !ns.IsInit() && outside(p, ns) && !owned {
		return "user namespace " + ns.Name, true
	}
	if t.PIDNS != "" && p.PIDNS != t.PIDNS && !owned {
		return "pid namespace " + t.PIDNS, true
	}
	return "", false
}

// findings ranks what the report shows.
func findings(m *Machine) []*Finding {
	var out []*Finding
	add := func(e *Edge, kind string, sev Severity, a Access, title string) {
		f := &Finding{Severity: sev, Kind: kind, Title: title, Principal: e.p.ID, PrincipalLabel: e.p.Label,
			Target: e.t.ID, TargetLabel: e.t.Label, Relation: e.Relation, Access: a.String(), Pairs: e.Pairs, Example: e.Example}
		out = append(out, f)
	}
	firstAllowed := func(e *Edge, as ...Access) (Access, bool) {
		for _, a := range as {
			if e.Answers[a].Allowed {
				return a, true
			}
		}
		return 0, false
	}
	for _, e := range m.Edges {
		if admin(e.p) {
			continue
		}
		p, t := e.p.rep, e.t.rep
		if a, ok := firstAllowed(e, AttachReal, AttachFS); ok {
			switch {
			case privilegedOver(p, t):
				add(e, KindAttachPrivileged, High, a, fmt.Sprintf("%s can attach to %s, which holds privilege it lacks", e.p.Label, e.t.Label))
			case t.Cred.EUID != p.Cred.EUID:
				add(e, KindAttachOtherUID, Medium, a, fmt.Sprintf("%s can attach to processes of uid %d", e.p.Label, t.Cred.EUID))
			}
		}
		setID := t.Cred.UID != t.Cred.EUID || t.Cred.SUID != t.Cred.EUID || t.Cred.GID != t.Cred.EGID || t.Cred.SGID != t.Cred.EGID
		if t.MM != nil && (t.MM.Dumpable != kernel.SuidDumpUser || setID) {
			if a, ok := firstAllowed(e, AttachReal, AttachFS); ok {
				add(e, KindNondumpable, High, a, fmt.Sprintf("%s can attach to non-dumpable or set-id %s", e.p.Label, e.t.Label))
			} else if a, ok := firstAllowed(e, ReadFS, ReadReal); ok {
				add(e, KindNondumpable, Medium, a, fmt.Sprintf("%s can read non-dumpable or set-id %s", e.p.Label, e.t.Label))
			}
		}
		if where, ok := container(p, t); ok {
			if a, ok := firstAllowed(e, AttachReal, AttachFS); ok {
				add(e, KindContainer, High, a, fmt.Sprintf("%s, outside %s, can attach to %s in it", e.p.Label, where, e.t.Label))
			} else if a, ok := firstAllowed(e, ReadFS, ReadReal); ok {
				add(e, KindContainer, Medium, a, fmt.Sprintf("%s, outside %s, can read %s in it", e.p.Label, where, e.t.Label))
			}
		}
	}
	for _, e := range m.Edges {
		if len(e.Grants) == 0 {
			continue
		}
		sev := Low
		for _, g := range e.Grants {
			if attachItem(g) {
				sev = Medium
			}
		}
		add(e, KindBrokerExceeds, sev, ReadFS, fmt.Sprintf("the policy grants %s %d item(s) on %s that the kernel refuses it", e.p.Label, len(e.Grants), e.t.Label))
		out[len(out)-1].Grants = e.Grants
	}
	out = append(out, yamaZero(m)...)
	slices.SortStableFunc(out, func(a, b *Finding) int {
		return cmp.Or(cmp.Compare(a.Severity.order(), b.Severity.order()), cmp.Compare(b.Pairs, a.Pairs))
	})
	if len(out) > maxFindings {
		out = out[:maxFindings]
	}
	for i, f := range out {
		f.Rank = i + 1
		m.story(f)
	}
	if out == nil {
		out = []*Finding{}
	}
	return out
}

// attachItem reports whether policy item name is attach-class.
func attachItem(name string) bool {
	it, err := policy.ParseItem(name)
	return err == nil && it.Attach()
}

// yamaZero lists the attach edges that exist only because Yama's scope
// is 0 or Yama is not active: the edges a scope of 1 removes.
func yamaZero(m *Machine) []*Finding {
	if m.Settings.Yama > 0 {
		return nil
	}
	wi, _ := ParseWhatIf("yama=1")
	in := Input{Name: m.Name, World: m.w, Live: m.sys}
	d, err := whatIf(in, Options{}, m, wi)
	if err != nil {
		return nil
	}
	var out []*Finding
	for _, r := range d.Removed {
		a, _ := ParseAccess(r.Access)
		if !a.IsAttach() {
			continue
		}
		p, t := m.Class(r.Principal), m.Class(r.Target)
		if admin(p) {
			continue
		}
		what := "Yama is not active"
		if m.Settings.Yama == 0 {
			what = "Yama's ptrace_scope is 0"
		}
		out = append(out, &Finding{Severity: Medium, Kind: KindYamaZero,
			Title:     fmt.Sprintf("%s can attach to %s only because %s", p.Label, t.Label, what),
			Principal: p.ID, PrincipalLabel: p.Label, Target: t.ID, TargetLabel: t.Label, Relation: r.Relation,
			Access: r.Access, Pairs: r.Pairs, Example: r.Example})
	}
	return out
}

// story fills in the explain story of the finding's example pair.
func (m *Machine) story(f *Finding) {
	a, err := ParseAccess(f.Access)
	if err != nil {
		return
	}
	c := m.tasks[f.Example[0]]
	if c == nil || f.Example[0] == 0 {
		c = m.loginRep[m.Class(f.Principal)]
	}
	t := m.tasks[f.Example[1]]
	if c == nil || t == nil {
		return
	}
	d := a.Question().Evaluate(m.w, c, t, true)
	f.Answer = d.Result() + " [" + string(d.Layer) + "]"
	f.Story = d.Steps
	if m.sys != nil && c.PID > 0 {
		f.Unknown = m.sys.Unknowns(c, t, a.Question())
	}
}

// Counts counts a machine's edges (pairs with an access allowed, per
// access) and findings (per kind and severity).
type Counts struct {
	// Pairs counts the process pairs with each access allowed.
	Pairs map[string]int `json:"pairs"`
	// Edges counts the class edges with each access allowed.
	Edges map[string]int `json:"edges"`
	// Findings counts findings by kind, then by severity.
	Findings map[string]map[Severity]int `json:"findings"`
}

// Count counts m's edges and findings.
func (m *Machine) Count() Counts {
	c := Counts{Pairs: map[string]int{}, Edges: map[string]int{}, Findings: map[string]map[Severity]int{}}
	for _, e := range m.Edges {
		for a := range NumAccess {
			if e.Answers[a].Allowed {
				c.Pairs[a.String()] += e.Pairs
				c.Edges[a.String()]++
			}
		}
	}
	for _, k := range Kinds {
		c.Findings[k] = map[Severity]int{}
	}
	for _, f := range m.Findings {
		c.Findings[f.Kind][f.Severity]++
	}
	return c
}
