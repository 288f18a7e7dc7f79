package gate

import (
	"github.com/procgate/procgate/policy"
)

// Policy is what the gate needs from a compiled policy; *policy.Policy
// implements it. Decide must be safe for concurrent use and should not
// allocate.
type Policy interface {
	// Decide answers whether the policy grants item it on t to s, given
	// the caller-supplied relations (descendant).
	Decide(s *policy.Subject, t *policy.Target, rel policy.Relation, it Item) policy.Decision
	// Generation identifies the loaded policy; it changes on reload.
	Generation() uint64
}

// explainer is implemented by policies that can name their deciding
// rules (used for audit records only: the slow path).
type explainer interface {
	Explain(s *policy.Subject, t *policy.Target, rel policy.Relation, it Item) policy.Explanation
}

// kernelBounder is implemented by policies with option kernel_bound.
type kernelBounder interface {
	KernelBound() bool
}

var _ interface {
	Policy
	explainer
	kernelBounder
} = (*policy.Policy)(nil)

// ruleOf names the rules that decided, "allow@default.pol:7+auditallow@…",
// or "none(nearest)" when no rule matched: the rule= field of the record
// the policy's explanation produces.
func ruleOf(pol Policy, s *policy.Subject, t *policy.Target, rel policy.Relation, it Item) (rule, reason string) {
	ex, ok := pol.(explainer)
	if !ok {
		return "", ""
	}
	r := ex.Explain(s, t, rel, it).Record()
	return r.Rule, r.Reason
}

// kernelBound reports whether grants are bounded by the caller's MAC
// layers (the policy's option kernel_bound, true by default).
func kernelBound(pol Policy) bool {
	if kb, ok := pol.(kernelBounder); ok {
		return kb.KernelBound()
	}
	return true
}

// allNeeds is every optional identity field.
const allNeeds = policy.NeedExe | policy.NeedCgroup | policy.NeedPIDNS

// targetNeeds returns the optional target fields pol's decisions depend
// on: what [policy.Policy.TargetNeeds] says, or all of them for a policy
// that cannot tell.
func targetNeeds(pol Policy) policy.Needs {
	if n, ok := pol.(interface{ TargetNeeds() policy.Needs }); ok {
		return n.TargetNeeds()
	}
	return allNeeds
}
