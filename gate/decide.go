package gate

import (
	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/policy"
)

// Source names the layer that decided an item.
type Source uint8

// The decision sources.
const (
	SourceKernel Source = iota // the kernel would let the caller read it directly
	SourcePolicy               // a policy rule granted it (or no rule did)
	SourceMAC                  // the caller's MAC layers refused it
	SourceBroker               // the broker does not serve it (or could not read it)
	numSources
)

var sourceNames = [numSources]string{"kernel", "policy", "mac", "broker"}

// String returns "kernel", "policy", "mac" or "broker".
func (s Source) String() string {
	if s < numSources {
		return sourceNames[s]
	}
	return "source?"
}

// Verdict is the decision for one item.
type Verdict struct {
	// Allowed is the answer; Masked is set for stat served with its [PT]
	// fields zeroed.
	Allowed, Masked bool
	// Errno is what a denied caller is told: the model's errno for the
	// caller unchanged (what it would meet opening the file itself), or
	// the gate's (EPERM for an attach-class item no rule grants, ENOTSUP
	// for an item never served); OK when allowed.
	Errno kernel.Errno
	// Reason says why a denial was made, naming the layer that decided
	// ("" when allowed).
	Reason string
	// Source is the layer that decided.
	Source Source
	// Rule is the policy rule behind the policy's own answer for the item
	// (the granting allow rule, or the refusing deny or protect rule);
	// policy.NoRule when no rule decided (a default denial).
	Rule policy.RuleID
	// Audit reports whether an audit record is due: the policy asks for
	// one (auditallow, or a denial no dontaudit silences) and the verdict
	// is the policy's; or the caller's MAC layers refused.
	Audit bool
}

// Decide answers one item for subject s and target t, given the
// caller-supplied relations rel and the model's view v of the pair: the
// item is granted when the kernel would let the caller read it directly,
// or when the policy grants it and, under option kernel_bound, the
// caller's MAC layers would allow the caller itself. Attach-class items
// need an attach rule whatever the kernel allows; items the gate never
// serves are refused.
//
// A question Decide cannot answer (an unknown item, no subject or target,
// a view without the item) is denied with EINVAL, never granted.
//
// Decide is the one decision of the enforcement points (the broker, the
// FUSE front) and of the report: it records nothing — no metrics, no
// audit (the policy's decision cache still counts its lookups). Only a
// default denial of a non-dumpable target takes the policy's slow path
// ([policy.Policy.Explain]), to name the rule the target's
// non-dumpability kept from granting.
func Decide(pol Policy, s *policy.Subject, t *policy.Target, rel policy.Relation, v *View, it Item) Verdict {
	switch {
	case !it.Valid():
		return Verdict{Errno: kernel.EINVAL, Reason: "unknown item", Source: SourceBroker, Rule: policy.NoRule}
	case s == nil || t == nil || v == nil || int(it) >= len(v.Kernel) || int(it) >= len(v.MAC):
		return Verdict{Errno: kernel.EINVAL, Reason: "no subject, target or model answer for " + it.String(), Source: SourceBroker, Rule: policy.NoRule}
	}
	ck := &checks[it]
	kd, mac := v.Kernel[it], v.MAC[it]
	pv := pol.Decide(s, t, rel, it)
	if v.Protected {
		pv = policy.Decision{Rule: policy.NoRule}
	}
	vd := Verdict{Source: SourcePolicy, Rule: pv.Rule}
	switch {
	case ck.read.kind == kindRefused:
		vd.Source, vd.Errno = SourceBroker, kernel.ENOTSUP
		vd.Reason = "the broker does not serve " + it.String()
	case mac.Denied && kernelBound(pol):
		vd.Source, vd.Errno = SourceMAC, kernel.EACCES
		vd.Reason = "mac: " + mac.Reason
	case it.Attach():
		vd.Allowed = pv.Allowed
		if !vd.Allowed {
			vd.Errno = kernel.EPERM
			vd.Reason = "policy: " + policyRefusal(pol, s, t, rel, v, it, pv, "no attach rule grants attach-class item "+it.String())
		}
	case pv.Allowed:
		vd.Allowed = true
	case kd.Allowed && !(it == policy.ItemStatFull && kd.Masked):
		vd.Allowed, vd.Source = true, SourceKernel
	default:
		vd.Errno = kd.Errno
		if vd.Errno == kernel.OK {
			vd.Errno = kernel.EACCES // stat_full, which the kernel serves masked
		}
		vd.Reason = "policy: " + policyRefusal(pol, s, t, rel, v, it, pv, "no rule grants read { "+it.String()+" }")
		if kd.Allowed {
			vd.Reason += ", and the kernel would show the caller stat only masked (its [PT] fields zeroed: " + string(kd.Layer) + ")"
		} else {
			vd.Reason += " and the kernel would refuse the caller (" + string(kd.Layer) + ")"
		}
	}
	if vd.Allowed && it == policy.ItemStat && kd.Masked {
		// stat is served unmasked only when stat_full would be granted.
		full := pol.Decide(s, t, rel, policy.ItemStatFull)
		vd.Masked = v.Protected || !full.Allowed || v.MAC[policy.ItemStatFull].Denied && kernelBound(pol)
	}
	vd.Audit = pv.Audit && (vd.Allowed == pv.Allowed) || !vd.Allowed && vd.Source == SourceMAC
	return vd
}

// policyRefusal says why the policy did not grant it: the rule that
// refused it, the rule the target's non-dumpability kept from granting
// it, or otherwise none.
func policyRefusal(pol Policy, s *policy.Subject, t *policy.Target, rel policy.Relation, v *View, it Item, pv policy.Decision, none string) string {
	access := "read { " + it.String() + " }"
	if it.Attach() {
		access = it.AccessName()
	}
	if v.Protected {
		return "the target is one of procgate's own processes, on which no rule grants " + access
	}
	if pv.Rule != policy.NoRule {
		return ruleName(pol, pv.Rule) + " refuses " + access
	}
	if !t.Dumpable {
		if r, ok := nondumpableMiss(pol, s, t, rel, it); ok {
			return "the target is not dumpable, and " + r + " grants " + access + " only to dumpable targets (it does not say 'when nondumpable')"
		}
	}
	return none
}

// nondumpableMiss names the allow rule that would grant it if the
// target were dumpable: the rule the target's non-dumpability alone kept
// from applying (policy.Explain's near miss "target not dumpable").
func nondumpableMiss(pol Policy, s *policy.Subject, t *policy.Target, rel policy.Relation, it Item) (string, bool) {
	ex, ok := pol.(explainer)
	if !ok {
		return "", false
	}
	dumpable := *t
	dumpable.Dumpable = true
	e := ex.Explain(s, &dumpable, rel, it)
	if !e.Allowed || len(e.Granting) == 0 {
		return "", false
	}
	return e.Granting[0].String(), true
}

// ruleName names rule id of pol ("deny@site.pol:12"), or "a rule" when
// pol cannot.
func ruleName(pol Policy, id policy.RuleID) string {
	if rn, ok := pol.(ruleNamer); ok {
		if ref, ok := rn.Rule(id); ok {
			return ref.String()
		}
	}
	return "a rule"
}
