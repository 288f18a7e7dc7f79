package policy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/procgate/procgate/internal/suggest"
)

// Reasoning over rules without processes: the neverallow proof and the
// sesearch-style queries. Classes are opaque sets of processes here, with
// one refinement: two classes whose uid, gid, exe or container selectors
// have disjoint values cannot share a process. Everything else is assumed to overlap, which is the
// safe direction for an assertion.

// spec is a rule's subject or target as class sets.
type spec struct {
	any      bool
	inc, exc bitset
}

func (r *crule) sspec() spec { return spec{r.sAny, r.sInc, r.sExc} }
func (r *crule) tspec() spec { return spec{r.tAny, r.tInc, r.tExc} }

// mayIntersect reports whether some process could be in both a and b.
func (sp *space) mayIntersect(a, b spec) bool {
	if a.any && b.any {
		return true
	}
	if a.any {
		a, b = b, a
	}
	// a is explicit.
	for _, ca := range a.inc.members() {
		if b.exc.has(ca) {
			continue
		}
		if b.any {
			return true
		}
		for _, cb := range b.inc.members() {
			if a.exc.has(cb) {
				continue
			}
			if classesMayIntersect(sp.classes[ca], sp.classes[cb]) {
				return true
			}
		}
	}
	return false
}

// classesMayIntersect reports whether two classes could share a process.
// It reasons about the policy as written: a class that matches nothing on
// this machine only because a name is missing here still counts, so that
// a proof does not depend on the machine that loads the policy.
func classesMayIntersect(x, y *class) bool {
	if x == y {
		return true
	}
	for i := range x.clauses {
		cx := &x.clauses[i]
		if cx.not {
			continue
		}
		for j := range y.clauses {
			cy := &y.clauses[j]
			if cy.not || cy.key != cx.key {
				continue
			}
			if clausesDisjoint(cx, cy) {
				return false
			}
		}
	}
	return true
}

func clausesDisjoint(a, b *clause) bool {
	switch a.key {
	case selUID, selGID:
		for _, ra := range a.ids {
			for _, rb := range b.ids {
				if ra.lo <= rb.hi && rb.lo <= ra.hi {
					return false
				}
			}
		}
		return true
	case selExe:
		for _, ea := range a.exes {
			for _, eb := range b.exes {
				if ea == eb {
					return false
				}
			}
		}
		return true
	case selContainer:
		hostOnly := func(c *clause) bool { return c.host && !c.cont && len(c.pidns) == 0 }
		contOnly := func(c *clause) bool { return !c.host && (c.cont || len(c.pidns) > 0) }
		return hostOnly(a) && contOnly(b) || contOnly(a) && hostOnly(b)
	}
	return false
}

// contains reports whether every process in x is provably in d.
func (sp *space) contains(d, x spec) bool {
	if !d.any {
		if x.any {
			return false
		}
		for _, cx := range x.inc.members() {
			if !d.inc.has(cx) {
				return false
			}
		}
	}
	// Every class d excludes must be kept out of x.
	for _, e := range d.exc.members() {
		if x.exc.has(e) {
			continue
		}
		if x.any {
			return false
		}
		for _, cx := range x.inc.members() {
			if cx == e || classesMayIntersect(sp.classes[cx], sp.classes[e]) {
				return false
			}
		}
	}
	return true
}

// condsImplied reports whether refusing rule d applies whenever rule a
// does, as far as conditions go.
func condsImplied(d, a *Rule) bool {
	return d.When&^a.When == 0 && d.WhenNot&^a.WhenNot == 0
}

// Proof records how one intersection of a neverallow with an allow rule
// is covered.
type Proof struct {
	Neverallow, Allow RuleRef
	Items             ItemSet
	CoveredBy         []RuleRef
}

// String returns "neverallow@f:l ∩ allow@f:l { items }: covered by protect@f:l".
func (p Proof) String() string {
	return fmt.Sprintf("%s ∩ %s %s: covered by %s", p.Neverallow, p.Allow, p.Items, refList(p.CoveredBy))
}

// neverallow checks every assertion. An allow rule violates a neverallow
// when their items overlap, their subjects and targets may intersect, and
// the deny and protect rules that apply whenever the allow does do not
// cover the intersection for every overlapping item.
func (c *compiler) neverallow() error {
	p := c.p
	var viol ErrorList
	for _, n := range p.rules {
		if n.src.Effect != Neverallow {
			continue
		}
		for _, a := range p.rules {
			if a.src.Effect != Allow {
				continue
			}
			items := a.src.Items & n.src.Items
			if items == 0 || !p.subj.mayIntersect(a.sspec(), n.sspec()) || !p.tgt.mayIntersect(a.tspec(), n.tspec()) {
				continue
			}
			var covered ItemSet
			var by []RuleRef
			for _, d := range p.rules {
				if d.src.Effect != Deny && d.src.Effect != Protect {
					continue
				}
				di := d.src.Items & items &^ covered
				if di == 0 || !condsImplied(d.src, a.src) {
					continue
				}
				if !(p.subj.contains(d.sspec(), a.sspec()) || p.subj.contains(d.sspec(), n.sspec())) ||
					!(p.tgt.contains(d.tspec(), a.tspec()) || p.tgt.contains(d.tspec(), n.tspec())) {
					continue
				}
				covered |= di
				by = append(by, d.ref())
			}
			if covered != items {
				viol = append(viol, errorAt(a.src.Pos, fmt.Sprintf(
					"%s can grant %s that the neverallow at %s forbids (%s), and no deny or protect covers the intersection",
					a.src.Text, items&^covered, n.src.Pos, n.src.Text)))
				continue
			}
			p.proofs = append(p.proofs, Proof{Neverallow: n.ref(), Allow: a.ref(), Items: items, CoveredBy: by})
		}
	}
	if len(viol) > 0 {
		return &NeverallowError{Violations: viol, Proofs: p.proofs}
	}
	return nil
}

// Query selects allow rules for [Policy.Search]: those whose subject may
// include a process of class Subject, whose target may include one of
// class Target (a name "" means any), and that name one of Items (0 means
// every item).
type Query struct {
	Subject, Target string
	Items           ItemSet
}

// Grant is an allow rule as a query sees it.
type Grant struct {
	Rule             RuleRef
	Subject, Target  string // the rule's sets as written
	Items            ItemSet
	When, WhenNot    Relation
	Nondumpable      bool
	Removed          ItemSet   // items deny/protect always remove (for the query's classes, when given)
	RemovedBy        []RuleRef // the rules that remove them
	Limits           []RuleRef // deny/protect rules that refuse some of the grant under some condition
	AuditedBy        []RuleRef // auditallow rules that may log the grant
	EffectiveItems   ItemSet   // Items minus Removed
	ConditionSummary string    // "when same_uid" or ""
}

// Search returns the allow rules the query selects, each with what deny
// and protect rules take away: the sesearch of a procgate policy, behind
// `procgate policy who-can` and `what-can`.
func (p *Policy) Search(q Query) ([]Grant, error) {
	items := q.Items
	if items == 0 {
		items = AllItems
	}
	var qs, qt *spec
	if q.Subject != "" {
		s, err := p.namedSpec(q.Subject, SubjectClass)
		if err != nil {
			return nil, err
		}
		qs = &s
	}
	if q.Target != "" {
		t, err := p.namedSpec(q.Target, TargetClass)
		if err != nil {
			return nil, err
		}
		qt = &t
	}
	var out []Grant
	for _, a := range p.rules {
		if a.src.Effect != Allow {
			continue
		}
		its := a.src.Items & items
		if its == 0 || qs != nil && !p.subj.mayIntersect(a.sspec(), *qs) || qt != nil && !p.tgt.mayIntersect(a.tspec(), *qt) {
			continue
		}
		g := Grant{Rule: a.ref(), Subject: setText(a.src.Subject), Target: setText(a.src.Target), Items: its,
			When: a.src.When, WhenNot: a.src.WhenNot, Nondumpable: a.src.Nondumpable}
		for _, d := range p.rules {
			di := d.src.Items & its
			if di == 0 {
				continue
			}
			switch d.src.Effect {
			case Deny, Protect:
			case AuditAllow:
				if p.subj.mayIntersect(d.sspec(), a.sspec()) && p.tgt.mayIntersect(d.tspec(), a.tspec()) {
					g.AuditedBy = append(g.AuditedBy, d.ref())
				}
				continue
			default:
				continue
			}
			if !p.subj.mayIntersect(d.sspec(), a.sspec()) || !p.tgt.mayIntersect(d.tspec(), a.tspec()) {
				continue
			}
			sCov := p.subj.contains(d.sspec(), a.sspec()) || qs != nil && p.subj.contains(d.sspec(), *qs)
			tCov := p.tgt.contains(d.tspec(), a.tspec()) || qt != nil && p.tgt.contains(d.tspec(), *qt)
			if condsImplied(d.src, a.src) && sCov && tCov {
				g.Removed |= di
				g.RemovedBy = append(g.RemovedBy, d.ref())
			} else {
				g.Limits = append(g.Limits, d.ref())
			}
		}
		g.EffectiveItems = g.Items &^ g.Removed
		g.ConditionSummary = condText(a.src)
		out = append(out, g)
	}
	return out, nil
}

// condText returns a rule's conditions as written ("when same_uid, not
// descendant"), or "".
func condText(r *Rule) string {
	var parts []string
	for i := range numRelations {
		bit := Relation(1) << i
		if r.When&bit != 0 {
			parts = append(parts, relationNames[i])
		}
		if r.WhenNot&bit != 0 {
			parts = append(parts, "not "+relationNames[i])
		}
	}
	if r.Nondumpable {
		parts = append(parts, "nondumpable")
	}
	if len(parts) == 0 {
		return ""
	}
	return "when " + strings.Join(parts, ", ")
}

func (p *Policy) namedSpec(name string, kind ClassKind) (spec, error) {
	sp := &p.subj
	if kind == TargetClass {
		sp = &p.tgt
	}
	if name == "*" {
		return spec{any: true, inc: newBitset(len(sp.classes)), exc: newBitset(len(sp.classes))}, nil
	}
	n, ok := p.names[name]
	if !ok || n.kind != kind && n.kind != 0 {
		var names []string
		for nm, v := range p.names {
			if v.kind == kind {
				names = append(names, nm)
			}
		}
		sort.Strings(names)
		if ok {
			return spec{}, fmt.Errorf("%q is a %s class, not a %s class", name, n.kind, kind)
		}
		return spec{}, fmt.Errorf("unknown %s class %q%s", kind, name, suggest.DidYouMean(name, names, 3))
	}
	s := spec{inc: newBitset(len(sp.classes)), exc: newBitset(len(sp.classes))}
	for _, id := range n.classes {
		s.inc.set(id)
	}
	return s, nil
}

// ClassNames returns the subject or target classes and attributes, sorted.
func (p *Policy) ClassNames(kind ClassKind) []string {
	var out []string
	for nm, v := range p.names {
		if v.kind == kind {
			out = append(out, nm)
		}
	}
	sort.Strings(out)
	return out
}
