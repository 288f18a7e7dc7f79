package policy

import (
	"fmt"
	"strconv"
	"strings"
)

// RuleRef names a rule by effect and position, with its source text.
type RuleRef struct {
	Effect Effect
	Pos    Pos
	Text   string
}

// String returns "effect@file:line", the form audit lines carry.
func (r RuleRef) String() string {
	return fmt.Sprintf("%s@%s:%d", r.Effect, r.Pos.File, r.Pos.Line)
}

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

// AccessName returns the audit spelling of an item: "read:fd",
// "attach:mem", and "attach" for the attach operation itself.
func (it Item) AccessName() string { return accessName(it) }

func accessName(it Item) string {
	switch {
	case it == ItemAttach:
		return "attach"
	case it.Attach():
		return "attach:" + it.String()
	}
	return "read:" + it.String()
}

// parseAccessName inverts accessName.
func parseAccessName(s string) (Item, error) {
	if s == "attach" {
		return ItemAttach, nil
	}
	cls, name, ok := strings.Cut(s, ":")
	if !ok || cls != "read" && cls != "attach" {
		return 0, fmt.Errorf("access %q: want read:ITEM, attach or attach:ITEM", s)
	}
	it, err := ParseItem(name)
	if err != nil {
		return 0, err
	}
	if it.Attach() != (cls == "attach") {
		return 0, fmt.Errorf("access %q: %s is not %s-class", s, name, cls)
	}
	return it, nil
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

// AuditLine returns the decision as one record in the kernel AVC's shape
// (policy-language.md §6.6):
//
//	procgate: denied { read:environ } for pid=3100 comm="lsof" uid=1002 gid=1002 scontext=… tpid=66 tcomm="nginx" tuid=33 tgid=33 tcontext=… rule=none gen=3 permissive=0
//
// rule= names the deciding rules ("allow@file:line+auditallow@file:line",
// "protect@file:line"), or none, with the nearest candidate in
// parentheses. [ParseAuditLine] reads it back.
func (e Explanation) AuditLine() string {
	var b strings.Builder
	verdict := "denied"
	if e.Allowed {
		verdict = "granted"
	}
	fmt.Fprintf(&b, "procgate: %s { %s } for", verdict, accessName(e.Item))
	s, t := &e.Subject, &e.Target
	fmt.Fprintf(&b, " pid=%d comm=%s uid=%d gid=%d", s.PID, quote(s.Comm), s.UID, s.GID)
	if s.Exe.Path != "" {
		fmt.Fprintf(&b, " exe=%s", quote(s.Exe.Path))
	}
	if s.SELinux != "" {
		fmt.Fprintf(&b, " scontext=%s", bare(s.SELinux))
	}
	if s.AppArmor != "" {
		fmt.Fprintf(&b, " sprofile=%s", quote(s.AppArmor))
	}
	fmt.Fprintf(&b, " tpid=%d tcomm=%s tuid=%d tgid=%d", t.PID, quote(t.Comm), t.UID, t.GID)
	if t.Exe.Path != "" {
		fmt.Fprintf(&b, " texe=%s", quote(t.Exe.Path))
	}
	if t.SELinux != "" {
		fmt.Fprintf(&b, " tcontext=%s", bare(t.SELinux))
	}
	if t.AppArmor != "" {
		fmt.Fprintf(&b, " tprofile=%s", quote(t.AppArmor))
	}
	var rule string
	switch {
	case e.Allowed:
		rule = refList(append(append([]RuleRef(nil), e.Granting...), e.Auditing...))
	case len(e.Refusing) > 0:
		rule = refList(e.Refusing)
	case len(e.NearMisses) > 0:
		rule = fmt.Sprintf("none(%s %s)", e.NearMisses[0].Rule, e.NearMisses[0].Why)
	default:
		rule = "none"
	}
	fmt.Fprintf(&b, " rule=%s gen=%d", bare(rule), e.Generation)
	if !e.Allowed {
		b.WriteString(" permissive=0")
	}
	return b.String()
}

// quote double-quotes s, as the kernel quotes comm=.
func quote(s string) string { return strconv.Quote(s) }

// bare returns s unquoted when it is one plain token, else quoted.
func bare(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"\\=") {
		return s
	}
	return strconv.Quote(s)
}

// AuditRecord is a parsed audit line.
type AuditRecord struct {
	Granted bool
	Item    Item
	// Fields are the key=value pairs, unquoted.
	Fields map[string]string
	// Rules are the rules named in rule= (for none(...), the near miss).
	Rules []RuleRef
	// Default is set for rule=none: no allow rule applied.
	Default bool
	// Generation is gen=, 0 when absent.
	Generation uint64
}

// ParseAuditLine parses a line written by [Explanation.AuditLine]. Text
// before "procgate:" (a syslog or journal prefix) is skipped.
func ParseAuditLine(line string) (*AuditRecord, error) {
	if i := strings.Index(line, "procgate: "); i >= 0 {
		line = line[i+len("procgate: "):]
	}
	line = strings.TrimSpace(line)
	rec := &AuditRecord{Fields: map[string]string{}}
	verdict, rest, _ := strings.Cut(line, " ")
	switch verdict {
	case "granted":
		rec.Granted = true
	case "denied":
	default:
		return nil, fmt.Errorf("audit line: want \"granted\" or \"denied\", found %q", verdict)
	}
	rest = strings.TrimSpace(rest)
	if !strings.HasPrefix(rest, "{") {
		return nil, fmt.Errorf("audit line: want '{ ACCESS }' after %s", verdict)
	}
	end := strings.IndexByte(rest, '}')
	if end < 0 {
		return nil, fmt.Errorf("audit line: unterminated '{ ACCESS }'")
	}
	acc := strings.TrimSpace(rest[1:end])
	it, err := parseAccessName(acc)
	if err != nil {
		return nil, fmt.Errorf("audit line: %w", err)
	}
	rec.Item = it
	rest = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest[end+1:]), "for"))
	for rest = strings.TrimSpace(rest); rest != ""; rest = strings.TrimSpace(rest) {
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("audit line: want key=value, found %q", rest)
		}
		key := rest[:eq]
		rest = rest[eq+1:]
		var val string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil, fmt.Errorf("audit line: field %s: %w", key, err)
			}
			val, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			val, rest, _ = strings.Cut(rest, " ")
		}
		rec.Fields[key] = val
	}
	if g, ok := rec.Fields["gen"]; ok {
		n, err := strconv.ParseUint(g, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("audit line: gen=%q: %w", g, err)
		}
		rec.Generation = n
	}
	rule, ok := rec.Fields["rule"]
	if !ok {
		return nil, fmt.Errorf("audit line: no rule= field")
	}
	if rule == "none" || strings.HasPrefix(rule, "none(") {
		rec.Default = true
		inner := strings.TrimSuffix(strings.TrimPrefix(rule, "none("), ")")
		if inner != rule && inner != "" {
			ref, _, _ := strings.Cut(inner, " ")
			r, err := parseRuleRef(ref)
			if err != nil {
				return nil, err
			}
			rec.Rules = append(rec.Rules, r)
		}
		return rec, nil
	}
	for _, ref := range strings.Split(rule, "+") {
		r, err := parseRuleRef(ref)
		if err != nil {
			return nil, err
		}
		rec.Rules = append(rec.Rules, r)
	}
	return rec, nil
}

// parseRuleRef parses "effect@file:line".
func parseRuleRef(s string) (RuleRef, error) {
	eff, loc, ok := strings.Cut(s, "@")
	i := strings.LastIndexByte(loc, ':')
	if !ok || i <= 0 {
		return RuleRef{}, fmt.Errorf("audit line: rule reference %q: want effect@file:line", s)
	}
	e := Effect(indexOf(effectNames[:], eff))
	if e <= 0 {
		return RuleRef{}, fmt.Errorf("audit line: rule reference %q: unknown effect %q", s, eff)
	}
	line, err := strconv.Atoi(loc[i+1:])
	if err != nil || line < 1 {
		return RuleRef{}, fmt.Errorf("audit line: rule reference %q: bad line number", s)
	}
	return RuleRef{Effect: e, Pos: Pos{File: loc[:i], Line: line}}, nil
}

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
