package selinux

import (
	"github.com/procgate/procgate/internal/suggest"
)

// ruleKind is an access-vector rule kind.
type ruleKind uint8

const (
	ruleAllow ruleKind = iota
	ruleAuditAllow
	ruleDontAudit
	ruleNeverAllow
)

var ruleKeywords = [...]string{"allow", "auditallow", "dontaudit", "neverallow"}

func (k ruleKind) String() string { return ruleKeywords[k] }

// keywords are the statements the parser knows.
var keywords = []string{"type", "attribute", "typeattribute", "permissive", "allow", "auditallow", "dontaudit", "neverallow"}

// setItem is one name in a set, possibly negated ("-c") or the keyword
// self.
type setItem struct {
	tok token
	neg bool
}

// setExpr is a type or permission set as written: a name, "*", "~x",
// "~{ ... }" or "{ a b -c }".
type setExpr struct {
	tok   token // first token, for error positions
	star  bool
	compl bool
	items []setItem
}

// stmt is one parsed statement.
type stmt struct {
	kw    string
	tok   token
	names []token // type/attribute/typeattribute/permissive operands
	rule  ruleKind
	src   setExpr
	tgt   setExpr
	class []token
	perms setExpr
}

// parser turns tokens into statements, collecting errors and recovering
// at the next ';'.
type parser struct {
	toks []token
	i    int
	errs ErrorList
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

// bail is raised (as a panic value local to the parser) to abandon a
// statement; parseStmts recovers it and skips to the next ';'.
type bail struct{}

func (p *parser) fail(t token, msg string) {
	p.errs = append(p.errs, &Error{Line: t.line, Col: t.col, Msg: msg})
	panic(bail{})
}

func (p *parser) expect(text string) token {
	t := p.next()
	if t.kind != tokPunct || t.text != text {
		p.fail(t, "expected '"+text+"', found "+describe(t))
	}
	return t
}

func (p *parser) ident(what string) token {
	t := p.next()
	if t.kind != tokIdent {
		p.fail(t, "expected "+what+", found "+describe(t))
	}
	return t
}

func describe(t token) string {
	switch t.kind {
	case tokEOF:
		return "end of policy"
	case tokPunct:
		return "'" + t.text + "'"
	}
	return quote(t.text)
}

// parseStmts parses the whole token stream.
func (p *parser) parseStmts() []stmt {
	var out []stmt
	for p.peek().kind != tokEOF && len(p.errs) < maxErrors {
		start := p.i
		s, ok := p.stmtOrBail()
		if ok {
			out = append(out, s)
			continue
		}
		// Recover after the next ';', unless the failing statement
		// already consumed it.
		if p.i > start && p.toks[p.i-1].kind == tokPunct && p.toks[p.i-1].text == ";" {
			continue
		}
		for {
			if t := p.next(); t.kind == tokEOF || t.kind == tokPunct && t.text == ";" {
				break
			}
		}
	}
	return out
}

func (p *parser) stmtOrBail() (s stmt, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, isBail := r.(bail); !isBail {
				panic(r)
			}
			ok = false
		}
	}()
	return p.stmt(), true
}

func (p *parser) stmt() stmt {
	kw := p.next()
	if kw.kind != tokIdent {
		p.fail(kw, "expected a statement, found "+describe(kw))
	}
	s := stmt{kw: kw.text, tok: kw}
	switch kw.text {
	case "type":
		s.names = append(s.names, p.ident("a type name"))
		for p.peek().text == "," {
			p.next()
			s.names = append(s.names, p.ident("an attribute name"))
		}
	case "attribute", "permissive":
		s.names = append(s.names, p.ident("a name"))
	case "typeattribute":
		s.names = append(s.names, p.ident("a type name"))
		s.names = append(s.names, p.ident("an attribute name"))
		for p.peek().text == "," {
			p.next()
			s.names = append(s.names, p.ident("an attribute name"))
		}
	case "allow", "auditallow", "dontaudit", "neverallow":
		for i, k := range ruleKeywords {
			if k == kw.text {
				s.rule = ruleKind(i)
			}
		}
		s.src = p.set("a source type set")
		s.tgt = p.set("a target type set")
		p.expect(":")
		s.class = p.classes()
		s.perms = p.set("a permission set")
	default:
		p.fail(kw, "unknown statement "+quote(kw.text)+suggest.DidYouMean(kw.text, keywords, 3))
	}
	p.expect(";")
	return s
}

// classes parses a class name or a { list } of them.
func (p *parser) classes() []token {
	if p.peek().text != "{" {
		return []token{p.ident("a class name")}
	}
	p.next()
	var out []token
	for p.peek().text != "}" {
		out = append(out, p.ident("a class name"))
	}
	p.next()
	if len(out) == 0 {
		p.fail(p.toks[p.i-1], "empty class set")
	}
	return out
}

// set parses a set expression.
func (p *parser) set(what string) setExpr {
	t := p.peek()
	e := setExpr{tok: t}
	switch {
	case t.text == "*" && t.kind == tokPunct:
		p.next()
		e.star = true
		return e
	case t.text == "~" && t.kind == tokPunct:
		p.next()
		e.compl = true
		if p.peek().text == "{" {
			e.items = p.braced()
		} else {
			e.items = []setItem{{tok: p.ident(what)}}
		}
		return e
	case t.text == "{" && t.kind == tokPunct:
		e.items = p.braced()
		return e
	}
	e.items = []setItem{{tok: p.ident(what)}}
	return e
}

// braced parses "{ a -b c }" (after peeking the '{').
func (p *parser) braced() []setItem {
	open := p.next()
	var out []setItem
	for {
		t := p.peek()
		switch {
		case t.kind == tokPunct && t.text == "}":
			p.next()
			if len(out) == 0 {
				p.fail(open, "empty set")
			}
			return out
		case t.kind == tokPunct && t.text == "-":
			p.next()
			out = append(out, setItem{tok: p.ident("a name after '-'"), neg: true})
		case t.kind == tokPunct && t.text == "*":
			p.next()
			out = append(out, setItem{tok: t})
		default:
			out = append(out, setItem{tok: p.ident("a name or '}'")})
		}
	}
}
