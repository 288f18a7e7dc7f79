package policy

import (
	"fmt"
	"strings"
)

// RuleRef names a rule by effect and position, with its source text.
type RuleRef struct {
	Effect Effect
	Pos    Pos
	Text   string
}

// String returns "effect@file:line", the form audit records carry.
func (r RuleRef) String() string { return r.auditRef().String() }

func (r *crule) ref() RuleRef { return RuleRef{r.src.Effect, r.src.Pos, r.src.Text} }

// NearMiss is an allow rule for the item that did not apply, with why.
type NearMiss struct {
	Rule RuleRef
	Why  string
}

// Explanation is a decision with the rules behind it: the audit2why of a
// procgate policy.
type Explanation struct {
	Decision
	Item       Item
	Generation uint64
	// Subject and Target are the processes asked about (for AuditLine).
	Subject Subject
	Target  Target
	// SubjectClasses and TargetClasses are the classes each belongs to.
	SubjectClasses, TargetClasses []string
	// Facts are the relational facts the decision used.
	Facts Relation
	// Granting are the allow rules that grant the item (when allowed).
	Granting []RuleRef
	// Refusing are the deny and protect rules that refuse it (when they
	// decided the denial).
	Refusing []RuleRef
	// Auditing are the auditallow rules (for a grant) or dontaudit rules
	// (for a denial) that decided Audit.
	Auditing []RuleRef
	// NearMisses are allow rules for the item that did not apply, when no
	// allow rule did.
	NearMisses []NearMiss
	// Reason is one sentence that sums the decision up.
	Reason string
}

// Deciding returns the rules that decided: the refusing rules for a
// denial by deny/protect, else the granting ones, then the audit rules.
func (e Explanation) Deciding() []RuleRef {
	var out []RuleRef
	if e.Allowed {
		out = append(out, e.Granting...)
	} else {
		out = append(out, e.Refusing...)
	}
	return append(out, e.Auditing...)
}

// maxNearMisses bounds the near misses an explanation lists.
const maxNearMisses = 5

// Explain answers like [Policy.Decide] and says why. It evaluates every
// rule directly, without the index or the cache (an independent path that
// tests hold equal to Decide), and does not touch the counters.
func (p *Policy) Explain(s *Subject, t *Target, rel Relation, it Item) Explanation {
	e := Explanation{Item: it, Generation: p.gen}
	e.Rule = NoRule
	if s == nil || t == nil || !it.Valid() {
		e.Reason = "invalid question (no subject, no target or an unknown item): denied"
		e.Audit = p.opts.audit != auditNone
		return e
	}
	e.Subject, e.Target = *s, *t
	sv, tv := s.view(), t.view()
	S, T := newBitset(len(p.subj.classes)), newBitset(len(p.tgt.classes))
	p.subj.classify(&sv, S)
	p.tgt.classify(&tv, T)
	e.SubjectClasses, e.TargetClasses = p.subj.names(S), p.tgt.names(T)
	facts := relate(s, t, rel, p.opts.container)
	e.Facts = facts
	bit := it.Set()
	var auditallow, dontaudit []RuleRef
	firstGrant, firstRefuse := NoRule, NoRule
	for _, r := range p.rules {
		if r.src.Items&bit == 0 || r.src.Effect == Neverallow {
			continue
		}
		sOK := (r.sAny || r.sInc.intersects(S)) && !r.sExc.intersects(S)
		tOK := (r.tAny || r.tInc.intersects(T)) && !r.tExc.intersects(T)
		if sOK && tOK && r.applies(S, T, facts) {
			switch r.src.Effect {
			case Allow:
				e.Granting = append(e.Granting, r.ref())
				if firstGrant == NoRule {
					firstGrant = RuleID(r.id)
				}
			case Deny, Protect:
				e.Refusing = append(e.Refusing, r.ref())
				if firstRefuse == NoRule {
					firstRefuse = RuleID(r.id)
				}
			case AuditAllow:
				auditallow = append(auditallow, r.ref())
			case DontAudit:
				dontaudit = append(dontaudit, r.ref())
			}
			continue
		}
		if r.src.Effect == Allow && tOK && len(e.NearMisses) < maxNearMisses*2 {
			e.NearMisses = append(e.NearMisses, NearMiss{r.ref(), missWhy(r, sOK, facts)})
		}
	}
	switch {
	case len(e.Refusing) > 0:
		e.Allowed, e.Rule = false, firstRefuse
		e.Reason = fmt.Sprintf("refused by %s (deny and protect beat allow)", refList(e.Refusing))
	case len(e.Granting) > 0:
		e.Allowed, e.Rule = true, firstGrant
		e.Reason = fmt.Sprintf("granted by %s", refList(e.Granting))
	default:
		e.Reason = fmt.Sprintf("no allow rule grants %s of this target to this subject (default deny)", accessName(it))
		if facts&RelNondumpable != 0 {
			e.Reason += "; the target is not dumpable, which only rules with 'when nondumpable' reach"
		}
	}
	if e.Allowed {
		e.NearMisses = nil
		e.Auditing = auditallow
		e.Audit = len(auditallow) > 0 || p.opts.audit == auditAll
	} else {
		if len(e.Refusing) > 0 {
			e.NearMisses = nil
		}
		// Near misses whose subject matched come first.
		sortNearMisses(e.NearMisses)
		if len(e.NearMisses) > maxNearMisses {
			e.NearMisses = e.NearMisses[:maxNearMisses]
		}
		e.Auditing = dontaudit
		e.Audit = p.opts.audit != auditNone && len(dontaudit) == 0
	}
	return e
}

func sortNearMisses(ms []NearMiss) {
	// Stable partition: subject-matched misses (conditions) first.
	var a, b []NearMiss
	for _, m := range ms {
		if strings.HasPrefix(m.Why, "subject ") {
			b = append(b, m)
		} else {
			a = append(a, m)
		}
	}
	copy(ms, append(a, b...))
}

func missWhy(r *crule, sOK bool, facts Relation) string {
	if !sOK {
		return "subject is not in " + setText(r.src.Subject)
	}
	var parts []string
	if miss := r.src.When &^ facts; miss != 0 {
		parts = append(parts, "failed "+miss.String())
	}
	if bad := r.src.WhenNot & facts; bad != 0 {
		parts = append(parts, "failed not "+bad.String())
	}
	if facts&RelNondumpable != 0 && !r.src.Nondumpable {
		parts = append(parts, "target not dumpable")
	}
	if len(parts) == 0 {
		return "excluded by its class set"
	}
	return strings.Join(parts, ", ")
}

func setText(e SetExpr) string {
	if e.Any && len(e.Exclude) == 0 {
		return "*"
	}
	if len(e.Names) == 1 && len(e.Exclude) == 0 {
		return e.Names[0].Text
	}
	var parts []string
	for _, v := range e.Names {
		parts = append(parts, v.Text)
	}
	for _, v := range e.Exclude {
		parts = append(parts, "-"+v.Text)
	}
	return "{ " + strings.Join(parts, " ") + " }"
}

func refList(rs []RuleRef) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return strings.Join(parts, "+")
}

// String returns a multi-line human account of the decision.
func (e Explanation) String() string {
	var b strings.Builder
	verdict := "denied"
	if e.Allowed {
		verdict = "granted"
	}
	fmt.Fprintf(&b, "%s %s\n", verdict, accessName(e.Item))
	fmt.Fprintf(&b, "  subject classes: %s\n", listOrNone(e.SubjectClasses))
	fmt.Fprintf(&b, "  target classes:  %s\n", listOrNone(e.TargetClasses))
	fmt.Fprintf(&b, "  facts:           %s\n", e.Facts)
	fmt.Fprintf(&b, "  reason:          %s\n", e.Reason)
	for _, r := range e.Granting {
		fmt.Fprintf(&b, "  grant:   %s  %s\n", r, r.Text)
	}
	for _, r := range e.Refusing {
		fmt.Fprintf(&b, "  refuse:  %s  %s\n", r, r.Text)
	}
	for _, m := range e.NearMisses {
		fmt.Fprintf(&b, "  nearest: %s %s  %s\n", m.Rule, m.Why, m.Rule.Text)
	}
	switch {
	case e.Audit:
		fmt.Fprintf(&b, "  audit:   logged")
		for _, r := range e.Auditing {
			fmt.Fprintf(&b, " (%s)", r)
		}
		b.WriteByte('\n')
	case !e.Allowed && len(e.Auditing) > 0:
		fmt.Fprintf(&b, "  audit:   record suppressed by %s (the denial is still counted)\n", refList(e.Auditing))
	case !e.Allowed:
		fmt.Fprintf(&b, "  audit:   record suppressed by option default_audit (the denial is still counted)\n")
	default:
		fmt.Fprintf(&b, "  audit:   not logged (grants are logged only under auditallow)\n")
	}
	return b.String()
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "(none)"
	}
	return strings.Join(l, " ")
}
