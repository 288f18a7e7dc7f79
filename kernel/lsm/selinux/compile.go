package selinux

import (
	"sort"
	"strings"

	"github.com/procgate/procgate/internal/suggest"
)

// Parse parses and compiles a policy. On failure the error is an
// [ErrorList]. It never panics.
func Parse(src string) (*Policy, error) {
	toks, lerr := lex(src)
	if lerr != nil {
		return nil, ErrorList{lerr}
	}
	ps := &parser{toks: toks}
	stmts := ps.parseStmts()
	if len(ps.errs) > 0 {
		return nil, ps.errs
	}
	c := &compiler{p: &Policy{src: src, index: map[string]ident{}, avtab: map[avKey]avEntry{}}, anon: map[string]int32{}}
	c.declare(stmts)
	if len(c.errs) == 0 {
		c.rules(stmts)
	}
	if len(c.errs) > 0 {
		sort.SliceStable(c.errs, func(i, j int) bool {
			a, b := c.errs[i], c.errs[j]
			return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
		})
		return nil, c.errs
	}
	return c.p, nil
}

// compiler turns statements into a Policy.
type compiler struct {
	p       *Policy
	errs    ErrorList
	members []bitset         // attribute index → member types
	anon    map[string]int32 // bitset key → anonymous set key
	nAnon   int32
	allows  []compiledRule // for neverallow checking
}

// compiledRule is an allow rule resolved to type sets.
type compiledRule struct {
	tok      token
	src, tgt bitset
	self     bool
	class    class
	perms    uint32
}

func (c *compiler) errf(t token, msg string) {
	if len(c.errs) < maxErrors {
		c.errs = append(c.errs, &Error{Line: t.line, Col: t.col, Msg: msg})
	}
}

// declare runs the first pass: types, attributes and their membership,
// so that rules may use names declared after them, as checkpolicy
// allows.
func (c *compiler) declare(stmts []stmt) {
	p := c.p
	decl := func(t token, attr bool) {
		if t.text == "self" {
			c.errf(t, "\"self\" is a keyword and cannot be declared")
			return
		}
		if _, dup := p.index[t.text]; dup {
			c.errf(t, "duplicate declaration of "+quote(t.text))
			return
		}
		if attr {
			p.index[t.text] = ident{true, int32(len(p.attrNames))}
			p.attrNames = append(p.attrNames, t.text)
		} else {
			p.index[t.text] = ident{false, int32(len(p.types))}
			p.types = append(p.types, t.text)
		}
	}
	for _, s := range stmts {
		switch s.kw {
		case "type":
			decl(s.names[0], false)
		case "attribute":
			decl(s.names[0], true)
		}
	}
	n := len(p.types)
	p.permissive = make([]bool, n)
	p.typeKeys = make([][]int32, n)
	for i := range p.typeKeys {
		p.typeKeys[i] = []int32{int32(i)}
	}
	c.members = make([]bitset, len(p.attrNames))
	for i := range c.members {
		c.members[i] = newBitset(n)
	}
	for _, s := range stmts {
		switch s.kw {
		case "type", "typeattribute":
			t, ok := c.lookup(s.names[0], false)
			if !ok {
				continue
			}
			for _, a := range s.names[1:] {
				if ai, ok := c.lookup(a, true); ok && !c.members[ai].has(t) {
					c.members[ai].set(t)
					p.typeKeys[t] = append(p.typeKeys[t], c.attrKey(ai))
				}
			}
		case "permissive":
			if t, ok := c.lookup(s.names[0], false); ok {
				p.permissive[t] = true
			}
		}
	}
}

// attrKey is the avtab key of attribute i.
func (c *compiler) attrKey(i int32) int32 { return int32(len(c.p.types)) + i }

// lookup resolves a name that must be a type (attr false) or an
// attribute (attr true).
func (c *compiler) lookup(t token, attr bool) (int32, bool) {
	id, ok := c.p.index[t.text]
	want := map[bool]string{false: "type", true: "attribute"}[attr]
	switch {
	case !ok:
		c.errf(t, "unknown "+want+" "+quote(t.text)+c.suggestName(t.text))
		return 0, false
	case id.attr != attr:
		c.errf(t, quote(t.text)+" is "+map[bool]string{false: "a type", true: "an attribute"}[id.attr]+", not "+map[bool]string{false: "a type", true: "an attribute"}[attr])
		return 0, false
	}
	return id.idx, true
}

func (c *compiler) suggestName(s string) string {
	names := make([]string, 0, len(c.p.types)+len(c.p.attrNames))
	names = append(append(names, c.p.types...), c.p.attrNames...)
	return suggest.DidYouMean(s, names, 3)
}

// rules runs the second pass over the access-vector rules.
func (c *compiler) rules(stmts []stmt) {
	var nevers []stmt
	for _, s := range stmts {
		if s.kw != "allow" && s.kw != "auditallow" && s.kw != "dontaudit" && s.kw != "neverallow" {
			continue
		}
		c.p.rules++
		if s.rule == ruleNeverAllow {
			nevers = append(nevers, s)
			continue
		}
		c.rule(s)
	}
	for _, s := range nevers {
		c.neverallow(s)
	}
}

// typeSet resolves a set expression to types; self reports whether the
// keyword self was among the items (allowed only for targets).
func (c *compiler) typeSet(e setExpr, target bool) (set bitset, self, ok bool) {
	n := len(c.p.types)
	set = newBitset(n)
	if e.star {
		set.fill(n)
		return set, false, true
	}
	pos, neg := newBitset(n), newBitset(n)
	ok = true
	for _, it := range e.items {
		if it.tok.kind == tokPunct { // '*' inside braces
			pos.fill(n)
			continue
		}
		if it.tok.text == "self" {
			if !target || it.neg || e.compl {
				c.errf(it.tok, "\"self\" may appear only as a target")
				ok = false
				continue
			}
			self = true
			continue
		}
		dst := pos
		if it.neg {
			dst = neg
		}
		id, found := c.p.index[it.tok.text]
		switch {
		case !found:
			c.errf(it.tok, "unknown type or attribute "+quote(it.tok.text)+c.suggestName(it.tok.text))
			ok = false
		case id.attr:
			dst.or(c.members[id.idx])
		default:
			dst.set(id.idx)
		}
	}
	pos.andNot(neg)
	if e.compl {
		set.fill(n)
		set.andNot(pos)
	} else {
		set = pos
	}
	return set, self, ok
}

// key returns the avtab key for a set: the name itself when the rule
// names one type or attribute, else an anonymous set shared by every
// rule naming the same types.
func (c *compiler) key(e setExpr, set bitset) []int32 {
	if !e.star && !e.compl && len(e.items) == 1 && !e.items[0].neg && e.items[0].tok.kind == tokIdent && e.items[0].tok.text != "self" {
		id := c.p.index[e.items[0].tok.text]
		if id.attr {
			return []int32{c.attrKey(id.idx)}
		}
		return []int32{id.idx}
	}
	if set.count() == 0 {
		return nil
	}
	k := set.key()
	if a, ok := c.anon[k]; ok {
		return []int32{a}
	}
	a := int32(len(c.p.types)+len(c.p.attrNames)) + c.nAnon
	c.nAnon++
	c.anon[k] = a
	for t := range set.all() {
		c.p.typeKeys[t] = append(c.p.typeKeys[t], a)
	}
	return []int32{a}
}

// classPerms resolves the class list and permission set of a rule.
func (c *compiler) classPerms(s stmt) (cls []class, perms []uint32, ok bool) {
	ok = true
	for _, ct := range s.class {
		k, found := lookupClass(ct.text)
		if !found {
			c.errf(ct, "unknown class "+quote(ct.text)+suggest.DidYouMean(ct.text, classNames(), 3)+" (known: "+strings.Join(classNames(), ", ")+")")
			ok = false
			continue
		}
		var mask uint32
		if s.perms.star {
			mask = k.all()
		} else {
			var pos, neg uint32
			for _, it := range s.perms.items {
				if it.tok.kind == tokPunct {
					pos |= k.all()
					continue
				}
				b, found := k.perm(it.tok.text)
				if !found {
					// With several classes a permission need exist in
					// only one of them.
					if !definedInAny(s.class, it.tok.text) || len(s.class) == 1 {
						c.errf(it.tok, k.unknownPerm(it.tok.text))
						ok = false
					}
					continue
				}
				if it.neg {
					neg |= b
				} else {
					pos |= b
				}
			}
			mask = pos &^ neg
			if s.perms.compl {
				mask = k.all() &^ mask
			}
		}
		cls = append(cls, k)
		perms = append(perms, mask)
	}
	return cls, perms, ok
}

// definedInAny reports whether perm belongs to one of the named classes.
func definedInAny(cls []token, perm string) bool {
	for _, ct := range cls {
		if k, ok := lookupClass(ct.text); ok {
			if _, ok := k.perm(perm); ok {
				return true
			}
		}
	}
	return false
}

// rule compiles allow, auditallow and dontaudit rules into the avtab.
func (c *compiler) rule(s stmt) {
	src, srcSelf, ok1 := c.typeSet(s.src, false)
	tgt, self, ok2 := c.typeSet(s.tgt, true)
	cls, perms, ok3 := c.classPerms(s)
	if !ok1 || !ok2 || !ok3 || srcSelf {
		return
	}
	srcKeys := c.key(s.src, src)
	var tgtKeys []int32
	if self {
		tgtKeys = append(tgtKeys, selfKey)
		if tgt.count() > 0 {
			tgtKeys = append(tgtKeys, c.key(setExpr{items: nonSelf(s.tgt.items)}, tgt)...)
		}
	} else {
		tgtKeys = c.key(s.tgt, tgt)
	}
	for i, k := range cls {
		for _, sk := range srcKeys {
			for _, tk := range tgtKeys {
				e := c.p.avtab[avKey{sk, tk, k}]
				switch s.rule {
				case ruleAllow:
					e.allow |= perms[i]
				case ruleAuditAllow:
					e.auditallow |= perms[i]
				case ruleDontAudit:
					e.dontaudit |= perms[i]
				}
				c.p.avtab[avKey{sk, tk, k}] = e
			}
		}
		if s.rule == ruleAllow {
			c.allows = append(c.allows, compiledRule{s.tok, src, tgt, self, k, perms[i]})
		}
	}
}

// nonSelf drops self from a target list so that the rest gets a key of
// its own.
func nonSelf(items []setItem) []setItem {
	var out []setItem
	for _, it := range items {
		if it.tok.text != "self" {
			out = append(out, it)
		}
	}
	return out
}

// neverallow checks the assertion against every allow rule, as
// checkpolicy does at build time; it has no runtime effect.
func (c *compiler) neverallow(s stmt) {
	src, _, ok1 := c.typeSet(s.src, false)
	tgt, self, ok2 := c.typeSet(s.tgt, true)
	cls, perms, ok3 := c.classPerms(s)
	if !ok1 || !ok2 || !ok3 {
		return
	}
	for i, k := range cls {
		for _, a := range c.allows {
			if a.class != k || a.perms&perms[i] == 0 {
				continue
			}
			both := a.src.and(src)
			if both.count() == 0 {
				continue
			}
			// Pairs (x, y) the allow grants with x in the neverallow's
			// sources: y in a.tgt, or y = x when a is a self rule.
			hit := a.tgt.and(tgt).count() > 0 && both.count() > 0
			if a.self && both.and(tgt).count() > 0 {
				hit = true
			}
			if self && (both.and(a.tgt).count() > 0 || a.self) {
				hit = true
			}
			if hit {
				c.errf(s.tok, "neverallow violated by the allow rule at line "+itoa(a.tok.line)+" ("+k.String()+" "+k.permString(a.perms&perms[i])+")")
				return
			}
		}
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
