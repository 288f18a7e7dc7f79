package policy

import (
	"fmt"
	"strings"

	"github.com/procgate/procgate/audit"
)

// AccessName returns the audit spelling of an item: "read:fd",
// "attach:mem", and "attach" for the attach operation itself.
func (it Item) AccessName() string { return accessName(it) }

func accessName(it Item) string { return audit.AccessName(auditAccess(it)) }

// AuditAccess returns how an audit record names an item: its access
// class ([audit.Read] or [audit.Attach]) and its name ("attach" for the
// attach operation itself).
func (it Item) AuditAccess() (access, name string) { return auditAccess(it) }

func auditAccess(it Item) (access, name string) {
	if it.Attach() {
		return audit.Attach, it.String()
	}
	return audit.Read, it.String()
}

// itemOf inverts auditAccess.
func itemOf(access, name string) (Item, error) {
	it, err := ParseItem(name)
	if err != nil {
		return 0, err
	}
	if it.Attach() != (access == audit.Attach) {
		return 0, fmt.Errorf("%s is not %s-class", name, access)
	}
	return it, nil
}

func (r RuleRef) auditRef() audit.RuleRef {
	return audit.RuleRef{Effect: r.Effect.String(), File: r.Pos.File, Line: r.Pos.Line}
}

// Record returns the audit record the decision produces, without a time
// or serial number (it was not logged). Its rule= field names the rules
// that granted or refused the item, else none with the nearest allow rule
// that did not apply, then the auditallow or dontaudit rules that decided
// the audit.
func (e Explanation) Record() audit.Record {
	access, name := auditAccess(e.Item)
	var rule audit.Rule
	switch {
	case e.Allowed:
		rule.Refs = auditRefs(e.Granting)
	case len(e.Refusing) > 0:
		rule.Refs = auditRefs(e.Refusing)
	default:
		rule.Default = true
		if len(e.NearMisses) > 0 {
			rule.Nearest = e.NearMisses[0].Rule.auditRef()
		}
	}
	rule.Refs = append(rule.Refs, auditRefs(e.Auditing)...)
	return audit.Record{
		Granted: e.Allowed, Access: access, Item: name,
		Subject: auditProcess(&e.Subject.Process), Target: auditProcess(&e.Target.Process),
		Rule: rule.String(), Generation: e.Generation, Reason: e.Reason,
	}
}

func auditRefs(rs []RuleRef) []audit.RuleRef {
	out := make([]audit.RuleRef, len(rs))
	for i, r := range rs {
		out[i] = r.auditRef()
	}
	return out
}

// auditProcess returns a process as a record names it: its label is the
// SELinux context or, without one, the AppArmor label.
func auditProcess(p *Process) audit.Process {
	label := p.SELinux
	if label == "" {
		label = p.AppArmor
	}
	return audit.Process{PID: p.PID, Comm: p.Comm, UID: p.UID, Context: label}
}

// AuditLine returns the record the decision produces in the kernel AVC's
// shape (package audit, docs/policy.md "Audit records"), as the broker
// writes it, less the audit(TIME:SERIAL) header:
//
//	broker: denied { read:environ } for pid=3100 comm="lsof" uid=1002 tpid=66 tcomm="nginx" tuid=33 rule=none(allow@broker.pol:14) gen=3 permissive=0
//
// [ParseAuditLine] reads it back.
func (e Explanation) AuditLine() string {
	r := e.Record()
	return string(audit.AppendAVC(nil, &r))
}

// AuditRecord is an audit record read back, with its item and rules in
// the policy's terms.
type AuditRecord struct {
	// Record is the record as written.
	Record audit.Record
	// Item is the item the record names; a summary of any access
	// (Record.Scope ScopeCaller or ScopeAll) names none, nor does a
	// record of procgate's BPF program (Record.Writer audit.TagBPF),
	// which names a whole access class (Record.Access), and Item is then
	// meaningless.
	Item Item
	// Default is set for a default denial (rule=none…).
	Default bool
	// Nearest is, for a default denial, the nearest allow rule that did
	// not apply; its Effect is 0 when the record names none.
	Nearest RuleRef
	// Rules are the rules that decided: the rules that granted or refused
	// the item, then those that decided the audit. A summary has none.
	Rules []RuleRef
}

// ParseAuditLine parses an audit record as the broker writes it or as
// [Explanation.AuditLine] returns it, AVC-shaped or JSON, with or without
// a syslog or journal prefix ([audit.Parse]). Unknown items and rule
// effects are refused; every error is an [*audit.SyntaxError] with its
// column.
func ParseAuditLine(line string) (*AuditRecord, error) {
	r, err := audit.ParseWith(line, vocabulary{})
	if err != nil {
		return nil, err
	}
	out := &AuditRecord{Record: r}
	if r.Access != "" && r.Writer != audit.TagBPF { // a summary of any access, or the BPF program's record of a whole class, names no item
		out.Item, _ = itemOf(r.Access, r.Item) // vetted by the parser
	}
	if r.IsSummary() {
		return out, nil
	}
	rule, _ := audit.ParseRule(r.Rule) // likewise
	out.Default = rule.Default
	if rule.Nearest != (audit.RuleRef{}) {
		out.Nearest = ruleRefOf(rule.Nearest)
	}
	for _, ref := range rule.Refs {
		out.Rules = append(out.Rules, ruleRefOf(ref))
	}
	return out, nil
}

// ruleRefOf converts a vetted reference.
func ruleRefOf(r audit.RuleRef) RuleRef {
	return RuleRef{Effect: Effect(indexOf(effectNames[:], r.Effect)), Pos: Pos{File: r.File, Line: r.Line}}
}

// vocabulary is the policy's [audit.Vocabulary]: its items and effects.
type vocabulary struct{}

// CheckItem implements audit.Vocabulary.CheckItem.
func (vocabulary) CheckItem(access, name string) error {
	_, err := itemOf(access, name)
	return err
}

// CheckEffect implements audit.Vocabulary.CheckEffect.
func (vocabulary) CheckEffect(name string) error {
	if indexOf(effectNames[:], name) <= 0 {
		return fmt.Errorf("unknown effect %q (known: %s)", name, strings.Join(effectNames[1:], ", "))
	}
	return nil
}

var _ audit.Vocabulary = vocabulary{}

// RuleAt returns the rule that starts on the given line of the named
// file, for `procgate policy why`.
func (p *Policy) RuleAt(file string, line int) (RuleRef, bool) {
	for _, r := range p.rules {
		if r.src.Pos.File == file && r.src.Pos.Line == line {
			return r.ref(), true
		}
	}
	return RuleRef{}, false
}
