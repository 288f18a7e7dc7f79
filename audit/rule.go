package audit

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// RuleRef names a policy rule by effect and position: "effect@file:line".
type RuleRef struct {
	Effect string
	File   string
	Line   int
}

// String returns "effect@file:line".
func (r RuleRef) String() string {
	return r.Effect + "@" + r.File + ":" + strconv.Itoa(r.Line)
}

// Rule is the rule= field of a record: the rules that decided, the rule
// granting or refusing the access first, then the rules that decided the
// audit (auditallow, dontaudit), joined by '+'; or, when no rule granted
// or refused the access (a default denial), none, with the nearest allow
// rule that did not apply in parentheses, then the audit rules:
//
//	allow@broker.pol:15+auditallow@broker.pol:16
//	protect@broker.pol:17
//	none(allow@default.pol:25)
//	none+dontaudit@broker.pol:9
//
// A file name in which '+' is followed by a lower-case word and '@'
// cannot be told from the next reference.
type Rule struct {
	// Default is set for a default denial: the field starts with none.
	Default bool
	// Nearest is, for a default denial, the nearest allow rule that did
	// not apply; zero when the record names none.
	Nearest RuleRef
	// Refs are the rules that decided.
	Refs []RuleRef
}

// String returns the rule= field.
func (r Rule) String() string {
	var b strings.Builder
	if r.Default {
		b.WriteString("none")
		if r.Nearest != (RuleRef{}) {
			b.WriteString("(" + r.Nearest.String() + ")")
		}
	}
	for i, ref := range r.Refs {
		if i > 0 || r.Default {
			b.WriteByte('+')
		}
		b.WriteString(ref.String())
	}
	return b.String()
}

// ParseRule parses a rule= field.
func ParseRule(s string) (Rule, error) {
	var r Rule
	rest := s
	if strings.HasPrefix(rest, "none") {
		r.Default = true
		rest = rest[len("none"):]
		if strings.HasPrefix(rest, "(") {
			end := refEnd(rest, ')')
			if end < 0 {
				return Rule{}, fmt.Errorf("rule %q: unterminated none(", s)
			}
			ref, err := ParseRuleRef(rest[1:end])
			if err != nil {
				return Rule{}, fmt.Errorf("rule %q: %w", s, err)
			}
			r.Nearest = ref
			rest = rest[end+1:]
		}
		if rest == "" {
			return r, nil
		}
		if !strings.HasPrefix(rest, "+") {
			return Rule{}, fmt.Errorf("rule %q: want '+' or the end after none", s)
		}
		rest = rest[1:]
	}
	if rest == "" {
		return Rule{}, fmt.Errorf("rule %q: want none or effect@file:line", s)
	}
	for rest != "" {
		end := refEnd(rest, 0)
		ref, err := ParseRuleRef(rest[:end])
		if err != nil {
			return Rule{}, fmt.Errorf("rule %q: %w", s, err)
		}
		r.Refs = append(r.Refs, ref)
		rest = rest[end:]
		if rest != "" {
			rest = rest[1:] // the '+'
		}
	}
	return r, nil
}

// refEnd returns where the reference at the start of s ends: at the first
// '+' that starts another reference ("+effect@"), or, when close is not
// 0, at the first close byte that is followed by such a '+' or ends s
// (-1 when there is none).
func refEnd(s string, close byte) int {
	for i := 0; i < len(s); i++ {
		switch {
		case close != 0 && s[i] == close && (i+1 == len(s) || startsRef(s[i+1:])):
			return i
		case close == 0 && startsRef(s[i:]):
			return i
		}
	}
	if close != 0 {
		return -1
	}
	return len(s)
}

// startsRef reports whether s starts with "+effect@".
func startsRef(s string) bool {
	if len(s) < 3 || s[0] != '+' {
		return false
	}
	n := effectLen(s[1:])
	return n > 0 && n+1 < len(s) && s[n+1] == '@'
}

// effectLen returns the length of the run of lower-case letters s starts
// with.
func effectLen(s string) int {
	n := 0
	for n < len(s) && s[n] >= 'a' && s[n] <= 'z' {
		n++
	}
	return n
}

var errRuleRef = errors.New("want effect@file:line")

// ParseRuleRef parses "effect@file:line".
func ParseRuleRef(s string) (RuleRef, error) {
	n := effectLen(s)
	if n == 0 || n == len(s) || s[n] != '@' {
		return RuleRef{}, fmt.Errorf("rule reference %q: %w", s, errRuleRef)
	}
	loc := s[n+1:]
	i := strings.LastIndexByte(loc, ':')
	if i <= 0 {
		return RuleRef{}, fmt.Errorf("rule reference %q: %w", s, errRuleRef)
	}
	line, err := strconv.ParseUint(loc[i+1:], 10, 31)
	if err != nil || line < 1 {
		return RuleRef{}, fmt.Errorf("rule reference %q: bad line number", s)
	}
	return RuleRef{Effect: s[:n], File: loc[:i], Line: int(line)}, nil
}
