package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/procgate/procgate/internal/suggest"
	"github.com/procgate/procgate/kernel"
)

// maxErrors bounds the errors one Parse reports.
const maxErrors = 50

var (
	statementKeywords = []string{"subject", "target", "attribute", "allow", "deny", "auditallow", "dontaudit", "protect", "neverallow", "option"}
	selectorKeys      = []string{"uid", "gid", "group", "type", "label", "apparmor", "exe", "cgroup", "container", "cap"}
	conditionNames    = []string{"same_uid", "same_gid", "same_container", "same_cgroup", "same_label", "descendant", "nondumpable"}
	optionNames       = []string{"default_audit", "kernel_bound", "same_container"}
	optionValues      = map[string][]string{
		"default_audit":  {"denied", "all", "none"},
		"kernel_bound":   {"true", "false"},
		"same_container": {"both", "pidns", "cgroup"},
	}
)

// Parse parses one policy file. filename is used in positions only. The
// error, when not nil, is an [ErrorList] of positioned errors
// ("file:line:col: message"), with suggestions for misspelt names. Parse
// checks everything that needs no other file: syntax, item names, the
// class of each item against the rule's access, selector value forms.
// Names of classes and users are checked by [Compile].
func Parse(filename string, src []byte) (*File, error) {
	p := &parser{lx: newLexer(filename, src), src: src, f: &File{Name: filename}}
	for !p.full() {
		t := p.next()
		if t.kind == tEOF {
			break
		}
		p.stmt(t)
	}
	if err := errOf(p.errs); err != nil {
		return nil, err
	}
	return p.f, nil
}

type parser struct {
	lx     *lexer
	src    []byte
	f      *File
	errs   ErrorList
	peeked *token
}

func (p *parser) full() bool { return len(p.errs) >= maxErrors }

func (p *parser) next() token {
	if p.peeked != nil {
		t := *p.peeked
		p.peeked = nil
		return t
	}
	return p.lx.next()
}

func (p *parser) peek() token {
	if p.peeked == nil {
		t := p.lx.next()
		p.peeked = &t
	}
	return *p.peeked
}

// value reads a value-mode token; there must be no token peeked.
func (p *parser) value() token {
	if p.peeked != nil {
		return p.next()
	}
	return p.lx.value()
}

func (p *parser) errorf(pos Pos, format string, args ...any) {
	if !p.full() {
		p.errs = append(p.errs, errorAt(pos, fmt.Sprintf(format, args...)))
	}
}

// badStmt is raised (by panic within the statement parser) to abandon a
// statement after its error was recorded.
type badStmt struct{}

// fail records an error and abandons the statement.
func (p *parser) fail(pos Pos, format string, args ...any) {
	p.errorf(pos, format, args...)
	panic(badStmt{})
}

// sync skips to the end of the broken statement: past the next ';' outside
// braces, or past the '}' that closes a block opened in it.
func (p *parser) sync(inBlock bool) {
	depth := 0
	if inBlock {
		depth = 1
	}
	for {
		t := p.next()
		switch {
		case t.kind == tEOF:
			return
		case t.kind != tPunct:
		case t.text == "{":
			depth++
		case t.text == "}":
			depth--
			if depth <= 0 {
				if pk := p.peek(); pk.kind == tPunct && pk.text == ";" {
					p.next()
				}
				return
			}
		case t.text == ";" && depth == 0:
			return
		}
	}
}

func (p *parser) stmt(t token) {
	inBlock := false
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(badStmt); !ok {
				panic(r)
			}
			p.sync(inBlock)
		}
	}()
	if t.kind != tIdent {
		p.fail(t.pos, "expected a statement (%s), found %s", strings.Join(statementKeywords, ", "), t)
	}
	switch t.text {
	case "subject":
		inBlock = true
		p.class(t, SubjectClass)
	case "target":
		inBlock = true
		p.class(t, TargetClass)
	case "attribute":
		p.attribute(t)
	case "allow":
		p.rule(t, Allow)
	case "deny":
		p.rule(t, Deny)
	case "auditallow":
		p.rule(t, AuditAllow)
	case "dontaudit":
		p.rule(t, DontAudit)
	case "protect":
		p.rule(t, Protect)
	case "neverallow":
		p.rule(t, Neverallow)
	case "option":
		p.option(t)
	default:
		p.fail(t.pos, "unknown statement %q%s", t.text, suggest.DidYouMean(t.text, statementKeywords, 3))
	}
}

func (p *parser) expect(text string) token {
	t := p.next()
	if t.kind != tPunct || t.text != text {
		p.fail(t.pos, "expected %q, found %s", text, t)
	}
	return t
}

// name reads a class or attribute name.
func (p *parser) name(what string) token {
	t := p.next()
	if t.kind != tIdent || !validName(t.text) {
		p.fail(t.pos, "expected %s name, found %s", what, t)
	}
	return t
}

func validName(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z' || s[0] == '_') {
		return false
	}
	for i := range len(s) {
		if c := s[i]; c == '/' {
			return false
		}
	}
	return true
}

func (p *parser) class(kw token, kind ClassKind) {
	n := p.name(kind.String() + " class")
	d := &ClassDecl{Pos: kw.pos, Kind: kind, Name: n.text}
	p.expect("{")
	for {
		t := p.next()
		if t.kind == tPunct && t.text == "}" {
			break
		}
		if t.kind == tEOF {
			p.fail(t.pos, "unterminated %s block %q (missing '}')", kind, d.Name)
		}
		if t.kind != tIdent {
			p.fail(t.pos, "expected a selector (%s), found %s", strings.Join(selectorKeys, ", "), t)
		}
		sel := &Selector{Pos: t.pos}
		if t.text == "not" {
			sel.Not = true
			t = p.next()
			if t.kind != tIdent {
				p.fail(t.pos, "expected a selector after 'not', found %s", t)
			}
		}
		sel.Key = t.text
		if !slices.Contains(selectorKeys, sel.Key) {
			p.fail(t.pos, "unknown selector %q%s", t.text, suggest.DidYouMean(t.text, selectorKeys, 3))
		}
		closed := false
		for {
			v := p.value()
			if v.kind == tPunct && v.text == ";" {
				break
			}
			if v.kind == tPunct && v.text == "}" {
				p.errorf(v.pos, "missing ';' after selector %q", sel.Key)
				closed = true
				break
			}
			if v.kind == tEOF {
				p.fail(v.pos, "unterminated %s block %q (missing '}')", kind, d.Name)
			}
			if v.kind == tBad || v.kind == tPunct {
				p.fail(v.pos, "bad value for %s: %s", sel.Key, v)
			}
			if msg := checkValue(sel.Key, v.text); msg != "" {
				p.errorf(v.pos, "%s", msg)
			}
			sel.Values = append(sel.Values, Value{v.pos, v.text})
		}
		if len(sel.Values) == 0 {
			p.errorf(sel.Pos, "selector %q needs at least one value", sel.Key)
		}
		d.Selectors = append(d.Selectors, sel)
		if closed {
			break
		}
	}
	if t := p.peek(); t.kind == tPunct && t.text == ";" {
		p.next()
	}
	p.f.Classes = append(p.f.Classes, d)
}

// checkValue returns a message when v is not a valid value for key.
func checkValue(key, v string) string {
	switch key {
	case "uid", "gid", "group":
		if lo, hi, ok := strings.Cut(v, "-"); ok && isNumber(lo) {
			a, err1 := strconv.ParseUint(lo, 10, 32)
			b, err2 := strconv.ParseUint(hi, 10, 32)
			if err1 != nil || err2 != nil || a > b {
				return fmt.Sprintf("bad %s range %q (want LOW-HIGH with LOW <= HIGH < 2^32)", key, v)
			}
			return ""
		}
		if isNumber(v) {
			if _, err := strconv.ParseUint(v, 10, 32); err != nil {
				return fmt.Sprintf("bad %s %q: out of range", key, v)
			}
			return ""
		}
		if !validUserName(v) {
			return fmt.Sprintf("bad %s %q: want a number, a range LOW-HIGH or a name", key, v)
		}
	case "exe":
		if !strings.HasPrefix(v, "/") {
			return fmt.Sprintf("exe %q: want an absolute path", v)
		}
		if strings.ContainsAny(v, "*?[") {
			return fmt.Sprintf("exe %q: globs are not allowed (exe matches the device and inode of one file)", v)
		}
	case "cgroup":
		if !strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "*") {
			return fmt.Sprintf("cgroup %q: want an absolute cgroup path or glob (\"/system.slice/*\")", v)
		}
	case "cap":
		if _, err := kernel.ParseCap(v); err != nil {
			return fmt.Sprintf("cap: %v", err)
		}
	case "container":
		if v != "host" && v != "any" && !isNumber(v) {
			return fmt.Sprintf("container %q: want host, any or a pid-namespace inode number", v)
		}
		if isNumber(v) {
			if _, err := strconv.ParseUint(v, 10, 64); err != nil {
				return fmt.Sprintf("container %q: out of range", v)
			}
		}
	}
	return ""
}

func isNumber(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validUserName accepts the portable user/group name characters.
func validUserName(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '-' {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '$' && i == len(s)-1) {
			return false
		}
	}
	return true
}

func (p *parser) attribute(kw token) {
	n := p.name("attribute")
	d := &AttributeDecl{Pos: kw.pos, Name: n.text}
	p.expect("=")
	for {
		t := p.next()
		if t.kind == tPunct && t.text == ";" {
			break
		}
		if t.kind != tIdent || !validName(t.text) {
			p.fail(t.pos, "expected a class name or ';' in attribute %q, found %s", d.Name, t)
		}
		d.Members = append(d.Members, Value{t.pos, t.text})
	}
	if len(d.Members) == 0 {
		p.errorf(kw.pos, "attribute %q has no members", d.Name)
	}
	p.f.Attributes = append(p.f.Attributes, d)
}

func (p *parser) set(what string) SetExpr {
	t := p.next()
	s := SetExpr{Pos: t.pos}
	switch {
	case t.kind == tPunct && t.text == "*":
		s.Any = true
	case t.kind == tIdent && validName(t.text):
		s.Names = []Value{{t.pos, t.text}}
	case t.kind == tPunct && t.text == "{":
		for {
			u := p.next()
			if u.kind == tPunct && u.text == "}" {
				break
			}
			neg := false
			if u.kind == tPunct && u.text == "-" {
				neg = true
				u = p.next()
			}
			if u.kind != tIdent || !validName(u.text) {
				p.fail(u.pos, "expected a class name, '-NAME' or '}' in the %s set, found %s", what, u)
			}
			if neg {
				s.Exclude = append(s.Exclude, Value{u.pos, u.text})
			} else {
				s.Names = append(s.Names, Value{u.pos, u.text})
			}
		}
		if len(s.Names) == 0 && len(s.Exclude) == 0 {
			p.fail(t.pos, "empty %s set '{ }' (write '*' for every process)", what)
		}
		s.Any = len(s.Names) == 0
	default:
		p.fail(t.pos, "expected a %s ('*', a class name or '{ … }'), found %s", what, t)
	}
	return s
}

func (p *parser) rule(kw token, eff Effect) {
	r := &Rule{Pos: kw.pos, Effect: eff}
	if eff == Protect {
		r.Subject = SetExpr{Pos: kw.pos, Any: true}
	} else {
		r.Subject = p.set("subject")
	}
	r.Target = p.set("target")
	p.expect(":")
	acc := p.next()
	switch {
	case acc.kind == tIdent && acc.text == "read":
	case acc.kind == tIdent && acc.text == "attach":
		r.Attach = true
	default:
		p.fail(acc.pos, "expected 'read' or 'attach', found %s%s", acc, suggest.DidYouMean(acc.text, []string{"read", "attach"}, 2))
	}
	class, className := ReadItems, "read"
	if r.Attach {
		class, className = AttachItems, "attach"
	}
	t := p.peek()
	switch {
	case t.kind == tPunct && t.text == "*":
		p.next()
		r.Items = class
	case t.kind == tPunct && t.text == "{":
		p.next()
		r.Items = p.items(r.Attach)
	default:
		if eff == Allow || eff == AuditAllow {
			if !r.Attach {
				p.fail(t.pos, "%s … : read needs items: '{ status io … }', or '*' for every read-class item", eff)
			}
		}
		r.Items = class
	}
	_ = className
	t = p.next()
	if t.kind == tIdent && t.text == "when" {
		if eff == Protect || eff == Neverallow {
			p.fail(t.pos, "%s takes no 'when' conditions", eff)
		}
		p.conditions(r)
		t = p.next()
	}
	if t.kind != tPunct || t.text != ";" {
		if t.kind == tIdent && r.When == 0 && r.WhenNot == 0 && slices.Contains(conditionNames, t.text) {
			p.fail(t.pos, "expected ';', found %s (conditions follow 'when')", t)
		}
		p.fail(t.pos, "expected ';', found %s", t)
	}
	r.Text = stmtText(p.src[kw.off : t.off+1])
	p.f.Rules = append(p.f.Rules, r)
}

func (p *parser) items(attach bool) ItemSet {
	var set ItemSet
	for {
		t := p.next()
		if t.kind == tPunct && t.text == "}" {
			break
		}
		if t.kind != tIdent {
			p.fail(t.pos, "expected an item name or '}', found %s", t)
		}
		it, ok := itemByName[t.text]
		switch {
		case !ok:
			p.errorf(t.pos, "unknown item %q%s", t.text, suggest.DidYouMean(t.text, ItemNames(), 3))
			continue
		case it.Attach() && !attach:
			p.errorf(t.pos, "item %q is attach-class: a read rule can never grant it (write a separate ': attach { %s }' rule)", t.text, t.text)
			continue
		case !it.Attach() && attach:
			p.errorf(t.pos, "item %q is read-class: name it in a ': read { … }' rule", t.text)
			continue
		}
		if set.Has(it) {
			p.errorf(t.pos, "item %q named twice", t.text)
		}
		set |= it.Set()
	}
	if set == 0 && len(p.errs) == 0 {
		p.fail(p.lx.pos(), "empty item set '{ }'")
	}
	return set
}

func (p *parser) conditions(r *Rule) {
	for {
		t := p.peek()
		if t.kind == tPunct && t.text == ";" {
			if r.When == 0 && r.WhenNot == 0 && !r.Nondumpable {
				p.fail(t.pos, "'when' needs at least one condition (%s)", strings.Join(conditionNames, ", "))
			}
			return
		}
		p.next()
		if t.kind == tPunct && t.text == "," {
			continue
		}
		neg := false
		if t.kind == tIdent && t.text == "not" {
			neg = true
			t = p.next()
		}
		if t.kind != tIdent {
			p.fail(t.pos, "expected a condition (%s), found %s", strings.Join(conditionNames, ", "), t)
		}
		i := indexOf(conditionNames, t.text)
		if i < 0 {
			p.fail(t.pos, "unknown condition %q%s", t.text, suggest.DidYouMean(t.text, conditionNames, 3))
		}
		rel := Relation(1) << i
		if rel == RelNondumpable {
			if neg {
				p.fail(t.pos, "'not nondumpable' is the default: rules match only dumpable targets unless they say nondumpable")
			}
			if r.Effect != Allow {
				p.fail(t.pos, "nondumpable widens allow rules only; %s rules already apply to non-dumpable targets", r.Effect)
			}
			r.Nondumpable = true
			continue
		}
		if neg {
			r.WhenNot |= rel
		} else {
			r.When |= rel
		}
		if r.When&r.WhenNot != 0 {
			p.fail(t.pos, "condition %q both required and excluded: the rule can never match", t.text)
		}
	}
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func (p *parser) option(kw token) {
	n := p.next()
	if n.kind != tIdent {
		p.fail(n.pos, "expected an option name (%s), found %s", strings.Join(optionNames, ", "), n)
	}
	if !slices.Contains(optionNames, n.text) {
		p.fail(n.pos, "unknown option %q%s", n.text, suggest.DidYouMean(n.text, optionNames, 3))
	}
	v := p.value()
	if v.kind != tIdent && v.kind != tString {
		p.fail(v.pos, "option %s needs a value (%s)", n.text, strings.Join(optionValues[n.text], ", "))
	}
	if !slices.Contains(optionValues[n.text], v.text) {
		p.fail(v.pos, "option %s: unknown value %q (want %s)%s", n.text, v.text, strings.Join(optionValues[n.text], ", "), suggest.DidYouMean(v.text, optionValues[n.text], 2))
	}
	p.expect(";")
	p.f.Options = append(p.f.Options, &OptionDecl{Pos: kw.pos, Name: n.text, Value: Value{v.pos, v.text}})
}

// stmtText collapses a statement's source to one line without comments.
func stmtText(b []byte) string {
	var parts []string
	for _, line := range strings.Split(string(b), "\n") {
		if i := commentStart(line); i >= 0 {
			line = line[:i]
		}
		parts = append(parts, strings.Fields(line)...)
	}
	return strings.Join(parts, " ")
}

// commentStart returns the index of a '#' that starts a comment (outside
// quotes), or -1.
func commentStart(line string) int {
	inQ := false
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '\\':
			if inQ {
				i++
			}
		case '"':
			inQ = !inQ
		case '#':
			if !inQ {
				return i
			}
		}
	}
	return -1
}
