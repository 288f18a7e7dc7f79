package apparmor

import (
	"slices"
	"strings"

	"github.com/procgate/procgate/internal/suggest"
)

// Parse parses profiles. On failure the error is an [ErrorList] holding
// the first problem. It never panics.
func Parse(src string) (*Policy, error) {
	p := &parser{src: src, pol: &Policy{src: src, profiles: map[string]*Profile{}}}
	if !p.top() {
		return nil, ErrorList{p.err}
	}
	return p.pol, nil
}

// parser scans the text byte by byte. Methods return false once err is
// set.
type parser struct {
	src string
	pos int
	pol *Policy
	err *Error
}

func (p *parser) fail(pos int, msg string) bool {
	if p.err == nil {
		line, col := 1, 1
		for i := 0; i < pos && i < len(p.src); i++ {
			if p.src[i] == '\n' {
				line, col = line+1, 1
			} else {
				col++
			}
		}
		p.err = &Error{Line: line, Col: col, Msg: msg}
	}
	return false
}

func (p *parser) eof() bool { return p.pos >= len(p.src) }

// space skips blanks and comments. '#include' is not a comment but an
// include directive, which is rejected.
func (p *parser) space() bool {
	for !p.eof() {
		c := p.src[p.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			p.pos++
		case c == '#':
			if strings.HasPrefix(p.src[p.pos:], "#include") {
				return p.fail(p.pos, "includes are not supported: inline the included rules")
			}
			for !p.eof() && p.src[p.pos] != '\n' {
				p.pos++
			}
		default:
			return true
		}
	}
	return true
}

// isDelim ends a bare word.
func isDelim(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' ||
		c == ',' || c == '{' || c == '}' || c == '(' || c == ')' || c == '=' || c == '#'
}

// word returns the bare word at pos (possibly empty) without consuming it.
func (p *parser) word() string {
	i := p.pos
	for i < len(p.src) && !isDelim(p.src[i]) {
		i++
	}
	return p.src[p.pos:i]
}

// value reads a name: a quoted string or a bare word in which commas
// inside {…} alternations do not end the word.
func (p *parser) value(what string) (string, int, bool) {
	start := p.pos
	if !p.eof() && p.src[p.pos] == '"' {
		var b strings.Builder
		for p.pos++; !p.eof(); p.pos++ {
			c := p.src[p.pos]
			if c == '\\' && p.pos+1 < len(p.src) {
				p.pos++
				b.WriteByte(p.src[p.pos])
				continue
			}
			if c == '"' {
				p.pos++
				return b.String(), start, true
			}
			if c == '\n' {
				break
			}
			b.WriteByte(c)
		}
		return "", start, p.fail(start, "unterminated quoted "+what)
	}
	depth := 0
	for !p.eof() {
		c := p.src[p.pos]
		if c == '{' {
			depth++
		} else if c == '}' {
			if depth == 0 {
				break
			}
			depth--
		} else if depth == 0 && (isDelim(c) && c != '=') {
			break
		} else if c == '\\' && p.pos+1 < len(p.src) {
			p.pos++
		}
		p.pos++
	}
	if p.pos == start {
		return "", start, p.fail(start, "expected "+what)
	}
	return p.src[start:p.pos], start, true
}

func (p *parser) expect(c byte, what string) bool {
	if !p.space() {
		return false
	}
	if p.eof() || p.src[p.pos] != c {
		return p.fail(p.pos, "expected '"+string(c)+"' "+what+", found "+p.found())
	}
	p.pos++
	return true
}

func (p *parser) found() string {
	if p.eof() {
		return "end of text"
	}
	if w := p.word(); w != "" {
		return "\"" + w + "\""
	}
	return "'" + p.src[p.pos:p.pos+1] + "'"
}

// top parses the top level.
func (p *parser) top() bool {
	for {
		if !p.space() {
			return false
		}
		if p.eof() {
			return true
		}
		start := p.pos
		w := p.word()
		switch {
		case w == "abi":
			// abi <abi/3.0>, or abi "file",: accepted, not interpreted.
			for !p.eof() && p.src[p.pos] != ',' && p.src[p.pos] != '\n' {
				p.pos++
			}
			if p.eof() || p.src[p.pos] != ',' {
				return p.fail(start, "abi rule not terminated by ','")
			}
			p.pos++
		case w == "include":
			return p.fail(start, "includes are not supported: inline the included rules")
		case strings.HasPrefix(p.src[p.pos:], "@{"):
			return p.fail(start, "variables are not supported")
		case w == "profile":
			p.pos += len(w)
			if !p.space() {
				return false
			}
			name, npos, ok := p.value("a profile name")
			if !ok {
				return false
			}
			if !p.profile(name, npos, true) {
				return false
			}
		case strings.HasPrefix(w, "/") || strings.HasPrefix(w, "\""):
			name, npos, ok := p.value("a profile name")
			if !ok {
				return false
			}
			if !p.profile(name, npos, false) {
				return false
			}
		case w == "":
			return p.fail(start, "expected a profile, found "+p.found())
		default:
			return p.fail(start, "expected a profile, found \""+w+"\""+suggest.DidYouMean(w, []string{"profile", "abi"}, 2))
		}
	}
}

// knownFlags are profile flags the model accepts; only complain,
// enforce, unconfined and audit change its behaviour.
var knownFlags = []string{
	"complain", "enforce", "unconfined", "audit", "kill", "prompt", "user",
	"attach_disconnected", "no_attach_disconnected", "mediate_deleted",
	"delegate_deleted", "chroot_relative", "namespace_relative",
	"chroot_attach", "chroot_no_attach", "interruptible", "default_allow",
}

// profile parses the rest of a profile header and its body.
func (p *parser) profile(name string, npos int, keyword bool) bool {
	if name == "unconfined" {
		return p.fail(npos, "\"unconfined\" is the built-in label and cannot be a profile name")
	}
	if strings.Contains(name, "//") {
		return p.fail(npos, "hats, child profiles and stacks are not supported")
	}
	if _, dup := p.pol.profiles[name]; dup {
		return p.fail(npos, "duplicate profile \""+name+"\"")
	}
	prof := &Profile{Name: name}
	if !p.space() {
		return false
	}
	// Optional attachment after "profile NAME".
	if w := p.word(); keyword && (strings.HasPrefix(w, "/") || strings.HasPrefix(w, "@{")) {
		if _, _, ok := p.value("an attachment"); !ok {
			return false
		}
		if !p.space() {
			return false
		}
	}
	if w := p.word(); w == "flags" {
		p.pos += len(w)
		if !p.expect('=', "after flags") || !p.space() {
			return false
		}
		paren := !p.eof() && p.src[p.pos] == '('
		if paren {
			p.pos++
		}
		for {
			if !p.space() {
				return false
			}
			if paren && !p.eof() && p.src[p.pos] == ')' {
				p.pos++
				break
			}
			fpos := p.pos
			f := p.word()
			if f == "" {
				return p.fail(p.pos, "expected a flag, found "+p.found())
			}
			p.pos += len(f)
			base, _, _ := strings.Cut(f, "=")
			switch {
			case f == "complain":
				prof.Mode = Complain
			case f == "enforce":
				prof.Mode = Enforce
			case f == "unconfined":
				prof.Mode = Unconfined
			case f == "audit":
				prof.AuditAll = true
			case slices.Contains(knownFlags, f) || base == "error" || base == "kill.signal" || base == "attach_disconnected.path":
			default:
				return p.fail(fpos, "unknown profile flag \""+f+"\""+suggest.DidYouMean(f, knownFlags, 3))
			}
			if !p.space() {
				return false
			}
			if !p.eof() && p.src[p.pos] == '=' { // flag=value
				p.pos++
				if _, _, ok := p.value("a flag value"); !ok {
					return false
				}
			}
			if !paren {
				break
			}
			if !p.space() {
				return false
			}
			if !p.eof() && p.src[p.pos] == ',' {
				p.pos++
			}
		}
	}
	open := p.pos
	if !p.expect('{', "to open profile \""+name+"\"") {
		return false
	}
	for {
		if !p.space() {
			return false
		}
		if p.eof() {
			return p.fail(open, "profile \""+name+"\" is not closed by '}'")
		}
		if p.src[p.pos] == '}' {
			p.pos++
			break
		}
		if !p.rule(prof) {
			return false
		}
	}
	prof.compile()
	p.pol.profiles[name] = prof
	p.pol.order = append(p.pol.order, name)
	return true
}
