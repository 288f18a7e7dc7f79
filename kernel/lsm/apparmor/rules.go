package apparmor

import (
	"strings"

	"github.com/procgate/procgate/internal/suggest"
	"github.com/procgate/procgate/kernel"
)

// rule parses one rule inside a profile.
func (p *parser) rule(prof *Profile) bool {
	start := p.pos
	var audit, deny bool
	for {
		w := p.word()
		switch w {
		case "audit":
			audit = true
		case "deny":
			deny = true
		case "allow":
		default:
			goto kind
		}
		p.pos += len(w)
		if !p.space() {
			return false
		}
	}
kind:
	kpos := p.pos
	w := p.word()
	switch {
	case w == "ptrace":
		p.pos += len(w)
		return p.ptrace(prof, audit, deny, start)
	case w == "capability":
		p.pos += len(w)
		return p.capability(prof, audit, deny)
	case w == "profile" || w == "hat" || strings.HasPrefix(w, "^"):
		return p.fail(kpos, "nested profiles and hats are not supported")
	case w == "include":
		return p.fail(kpos, "includes are not supported: inline the included rules")
	}
	return p.skipRule(kpos)
}

// skipRule skips a rule the model does not interpret, up to its trailing
// comma outside (), {}, [] and quotes.
func (p *parser) skipRule(start int) bool {
	depth := 0
	for !p.eof() {
		c := p.src[p.pos]
		switch c {
		case '"':
			if _, _, ok := p.value("string"); !ok {
				return false
			}
			continue
		case '(', '{', '[':
			depth++
		case ')', ']':
			depth--
		case '}':
			if depth == 0 {
				return p.fail(start, "rule not terminated by ','")
			}
			depth--
		case '#':
			if p.pos > 0 && (p.src[p.pos-1] == ' ' || p.src[p.pos-1] == '\t') {
				if !p.space() {
					return false
				}
				continue
			}
		case ',':
			if depth <= 0 {
				p.pos++
				return true
			}
		}
		p.pos++
	}
	return p.fail(start, "rule not terminated by ','")
}

// permWords maps ptrace access words to bits (parser/parser_misc.c
// parse_X_mode for ptrace: w and write are trace).
var permWords = map[string]uint8{
	"r": permRead, "read": permRead,
	"w": permTrace, "write": permTrace, "trace": permTrace,
	"rw":     permRead | permTrace,
	"readby": permReadBy, "tracedby": permTracedBy,
}

func permWordList() []string {
	return []string{"read", "trace", "readby", "tracedby", "r", "w", "rw", "write"}
}

// ptrace parses "ptrace [perms] [peer=AARE],".
func (p *parser) ptrace(prof *Profile, audit, deny bool, start int) bool {
	r := ptraceRule{audit: audit, deny: deny}
	if !p.space() {
		return false
	}
	perm := func(w string, at int) bool {
		b, ok := permWords[w]
		if !ok {
			return p.fail(at, "unknown ptrace permission \""+w+"\""+suggest.DidYouMean(w, permWordList(), 3))
		}
		r.perms |= b
		return true
	}
	if !p.eof() && p.src[p.pos] == '(' {
		p.pos++
		for {
			if !p.space() {
				return false
			}
			if p.eof() {
				return p.fail(start, "unterminated '(' in ptrace rule")
			}
			if c := p.src[p.pos]; c == ')' {
				p.pos++
				break
			} else if c == ',' {
				p.pos++
				continue
			}
			at, w := p.pos, p.word()
			if w == "" {
				return p.fail(p.pos, "expected a ptrace permission, found "+p.found())
			}
			p.pos += len(w)
			if !perm(w, at) {
				return false
			}
		}
		if r.perms == 0 {
			return p.fail(start, "empty ptrace permission list")
		}
	} else if w := p.word(); w != "" && w != "peer" {
		at := p.pos
		p.pos += len(w)
		if !perm(w, at) {
			return false
		}
	}
	if r.perms == 0 {
		r.perms = permAll // no permissions named: all of them
	}
	if !p.space() {
		return false
	}
	if w := p.word(); w == "peer" {
		p.pos += len(w)
		if !p.expect('=', "after peer") || !p.space() {
			return false
		}
		v, vpos, ok := p.value("a peer label")
		if !ok {
			return false
		}
		a, off, msg := compileAARE(v)
		if a == nil {
			if p.src[vpos] == '"' {
				off++
			}
			return p.fail(vpos+off, "bad peer pattern: "+msg)
		}
		r.peer = a
	} else if w != "" {
		return p.fail(p.pos, "unknown ptrace rule conditional \""+w+"\" (only peer= is known)")
	}
	if !p.expect(',', "to end the ptrace rule") {
		return false
	}
	prof.rules = append(prof.rules, r)
	return true
}

// capability parses "capability [name ...],"; no names means all.
func (p *parser) capability(prof *Profile, audit, deny bool) bool {
	var set kernel.CapSet
	for {
		if !p.space() {
			return false
		}
		if p.eof() {
			return p.fail(p.pos, "capability rule not terminated by ','")
		}
		if p.src[p.pos] == ',' {
			p.pos++
			break
		}
		at, w := p.pos, p.word()
		if w == "" {
			return p.fail(p.pos, "expected a capability name, found "+p.found())
		}
		c, err := kernel.ParseCap(w)
		if err != nil || strings.ToLower(w) != w || strings.HasPrefix(w, "cap_") || w[0] < 'a' || w[0] > 'z' {
			msg := "unknown capability \"" + w + "\""
			if err != nil {
				msg = err.Error()
			}
			return p.fail(at, msg)
		}
		set |= kernel.CapsOf(c)
		p.pos += len(w)
	}
	if set == 0 {
		set = kernel.CapSetAll
	}
	cr := &prof.caps
	if deny {
		cr.deny |= set
		if !audit {
			cr.quiet |= set
		}
	} else {
		cr.allow |= set
		if audit {
			cr.audit |= set
		}
	}
	return true
}
