package policy

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/procgate/procgate/internal/suggest"
	"github.com/procgate/procgate/kernel"
)

// initPIDNS is the inode of the initial pid namespace (PROC_PID_INIT_INO,
// include/linux/proc_ns.h).
const initPIDNS = 0xEFFFFFFC

// generations numbers compiled policies in the order they were compiled.
var generations atomic.Uint64

// auditMode is option default_audit.
type auditMode uint8

const (
	auditDenied auditMode = iota // log denials (unless dontaudit), grants only with auditallow
	auditAll                     // log grants and denials
	auditNone                    // log nothing except auditallow grants
)

type options struct {
	audit       auditMode
	kernelBound bool
	container   containerMode
}

// selKind is a selector key.
type selKind uint8

const (
	selUID selKind = iota
	selGID
	selGroup
	selType
	selLabel
	selAppArmor
	selExe
	selCgroup
	selContainer
	selCap
)

type idRange struct{ lo, hi uint32 }
type devIno struct{ dev, ino uint64 }

// clause is every value of one selector key in a class (ORed), or one
// `not` line.
type clause struct {
	key   selKind
	not   bool
	ids   []idRange
	globs []glob
	exes  []devIno
	pidns []uint64
	host  bool // container host
	cont  bool // container any
	caps  kernel.CapSet
}

func inRanges(rs []idRange, id uint32) bool {
	for _, r := range rs {
		if id >= r.lo && id <= r.hi {
			return true
		}
	}
	return false
}

func anyGlob(gs []glob, s string) bool {
	for i := range gs {
		if gs[i].match(s) {
			return true
		}
	}
	return false
}

func (c *clause) match(v *view) bool {
	switch c.key {
	case selUID:
		return inRanges(c.ids, v.uid)
	case selGID:
		return inRanges(c.ids, v.gid)
	case selGroup:
		if inRanges(c.ids, v.gid) {
			return true
		}
		for _, g := range v.groups {
			if inRanges(c.ids, g) {
				return true
			}
		}
		return false
	case selType:
		t := selinuxType(v.selinux)
		return t != "" && anyGlob(c.globs, t)
	case selLabel:
		return v.selinux != "" && anyGlob(c.globs, v.selinux)
	case selAppArmor:
		a := aaProfile(v.apparmor)
		return a != "" && anyGlob(c.globs, a)
	case selExe:
		if v.exe.Ino == 0 {
			return false
		}
		for _, e := range c.exes {
			if e.dev == v.exe.Dev && e.ino == v.exe.Ino {
				return true
			}
		}
		return false
	case selCgroup:
		return v.cgroup != "" && anyGlob(c.globs, v.cgroup)
	case selCap:
		return v.capPrm&c.caps != 0
	case selContainer:
		if v.pidns == 0 {
			return false
		}
		if c.host && v.pidns == initPIDNS || c.cont && v.pidns != initPIDNS {
			return true
		}
		for _, n := range c.pidns {
			if n == v.pidns {
				return true
			}
		}
	}
	return false
}

// class is a compiled subject or target class.
type class struct {
	name    string
	pos     Pos
	kind    ClassKind
	clauses []clause
	// empty is set when a positive selector lost every value to name
	// resolution: the class matches no process.
	empty bool
}

func (c *class) match(v *view) bool {
	if c.empty {
		return false
	}
	if len(c.clauses) == 0 {
		return true
	}
	for i := range c.clauses {
		if c.clauses[i].match(v) == c.clauses[i].not {
			return false
		}
	}
	return true
}

// named is a class or attribute name and the classes it stands for.
type named struct {
	pos     Pos
	kind    ClassKind
	attr    bool
	classes []int
}

// crule is a compiled rule.
type crule struct {
	src        *Rule
	id         int
	sAny, tAny bool
	sInc, sExc bitset // over subject classes
	tInc, tExc bitset // over target classes
}

// Policy is a compiled policy: immutable, safe for concurrent use, with
// its own decision cache. To reload, compile the new text and swap the
// pointer; the new policy has a larger [Policy.Generation].
type Policy struct {
	gen      uint64
	files    []*File
	opts     options
	subj     space
	tgt      space
	names    map[string]*named
	rules    []*crule
	bySubj   [][]int32 // per subject class: the rules whose subject includes it
	byTgt    [][]int32
	anySubj  []int32 // rules whose subject is `*` or only exclusions
	anyTgt   []int32
	cache    avc
	needs    Needs
	warnings []Warning
	proofs   []Proof
	// resolver resolved the policy's names; KernelRules resolves the
	// parents of its cgroup selectors with it.
	resolver Resolver
}

// Needs is a set of [Target] fields that a policy's decisions may
// depend on, beyond the ones every policy may use (uid, gid, groups, the
// SELinux and AppArmor labels, dumpable). A caller that reads targets
// from /proc can leave out what the policy never looks at; see
// [Policy.TargetNeeds].
type Needs uint8

// The optional target fields.
const (
	NeedExe    Needs = 1 << iota // Target.Exe: an exe selector in a target class
	NeedCgroup                   // Target.Cgroup: a cgroup selector, same_cgroup, or same_container over cgroups
	NeedPIDNS                    // Target.PIDNS: a container selector, or same_container over pid namespaces
)

// TargetNeeds returns the optional target fields this policy's decisions
// depend on. A field outside the set may be left zero in every [Target]
// passed to [Policy.Decide] without changing any decision: no target
// class tests it (not even under `not`) and no rule's `when` needs it.
func (p *Policy) TargetNeeds() Needs { return p.needs }

func (c *compiler) targetNeeds() Needs {
	var n Needs
	for _, cl := range c.p.tgt.classes {
		for i := range cl.clauses {
			switch cl.clauses[i].key {
			case selExe:
				n |= NeedExe
			case selCgroup:
				n |= NeedCgroup
			case selContainer:
				n |= NeedPIDNS
			}
		}
	}
	for _, r := range c.p.rules {
		cond := r.src.When | r.src.WhenNot
		if cond&RelSameCgroup != 0 {
			n |= NeedCgroup
		}
		if cond&RelSameContainer != 0 {
			switch c.p.opts.container {
			case containerPIDNS:
				n |= NeedPIDNS
			case containerCgroup:
				n |= NeedCgroup
			default:
				n |= NeedPIDNS | NeedCgroup
			}
		}
	}
	return n
}

// Generation returns the policy's generation: a number that grows with
// every policy compiled in this process, so a reload is visible in audit
// lines and in cache keys.
func (p *Policy) Generation() uint64 { return p.gen }

// Warnings returns what name resolution and the checks found without
// failing the load: unknown users and groups, executables that do not
// exist, classes that match nothing.
func (p *Policy) Warnings() []Warning { return p.warnings }

// Proofs returns, for every intersection of a neverallow with an allow,
// the deny or protect rules that cover it.
func (p *Policy) Proofs() []Proof { return p.proofs }

// KernelBound reports option kernel_bound: whether the enforcement point
// must intersect its verdict with the kernel's MAC layers (default true).
func (p *Policy) KernelBound() bool { return p.opts.kernelBound }

// Files returns the parsed files the policy was compiled from.
func (p *Policy) Files() []*File { return p.files }

// Load parses and compiles one policy file.
func Load(filename string, src []byte) (*Policy, error) {
	f, err := Parse(filename, src)
	if err != nil {
		return nil, err
	}
	return Compile(f)
}

// Compile compiles parsed files into one policy, resolving user, group
// and executable names on this machine with [SystemResolver].
func Compile(files ...*File) (*Policy, error) {
	return CompileWith(SystemResolver{}, files...)
}

// CompileWith compiles with the given resolver.
//
// A name that does not resolve (a user, a group, an executable missing on
// this machine) does not fail the load: that value matches no process,
// and a [Warning] says so. A class whose every value of some selector
// failed matches nothing. The error is an [ErrorList] for invalid input
// (unknown class names, kinds that do not fit, conflicting options), or a
// [*NeverallowError] when an assertion is violated.
func CompileWith(r Resolver, files ...*File) (*Policy, error) {
	if r == nil {
		return nil, errors.New("policy: nil resolver")
	}
	c := &compiler{r: r, p: &Policy{files: files, names: map[string]*named{}, resolver: r}}
	c.p.opts.kernelBound = true
	c.options()
	c.classes()
	c.attributes()
	c.compileRules()
	if err := errOf(c.errs); err != nil {
		sortErrors(c.errs)
		return nil, err
	}
	c.index()
	if err := c.neverallow(); err != nil {
		return nil, err
	}
	c.p.needs = c.targetNeeds()
	c.p.gen = generations.Add(1)
	c.p.subj.init()
	c.p.tgt.init()
	return c.p, nil
}

func sortErrors(l ErrorList) {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

type compiler struct {
	r    Resolver
	p    *Policy
	errs ErrorList
}

func (c *compiler) errorf(pos Pos, format string, args ...any) {
	c.errs = append(c.errs, errorAt(pos, fmt.Sprintf(format, args...)))
}

func (c *compiler) warnf(pos Pos, format string, args ...any) {
	c.p.warnings = append(c.p.warnings, Warning{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

func (c *compiler) options() {
	seen := map[string]*OptionDecl{}
	for _, f := range c.p.files {
		for _, o := range f.Options {
			if prev, ok := seen[o.Name]; ok && prev.Value.Text != o.Value.Text {
				c.errorf(o.Value.Pos, "option %s %s conflicts with %s %s at %s", o.Name, o.Value.Text, o.Name, prev.Value.Text, prev.Pos)
				continue
			}
			seen[o.Name] = o
			switch o.Name + "=" + o.Value.Text {
			case "default_audit=denied":
				c.p.opts.audit = auditDenied
			case "default_audit=all":
				c.p.opts.audit = auditAll
			case "default_audit=none":
				c.p.opts.audit = auditNone
			case "kernel_bound=true":
				c.p.opts.kernelBound = true
			case "kernel_bound=false":
				c.p.opts.kernelBound = false
			case "same_container=both":
				c.p.opts.container = containerBoth
			case "same_container=pidns":
				c.p.opts.container = containerPIDNS
			case "same_container=cgroup":
				c.p.opts.container = containerCgroup
			default:
				c.errorf(o.Value.Pos, "option %s: unknown value %q", o.Name, o.Value.Text)
			}
		}
	}
}

func (c *compiler) declare(name string, pos Pos, n *named) bool {
	if prev, ok := c.p.names[name]; ok {
		c.errorf(pos, "%q already defined at %s", name, prev.pos)
		return false
	}
	c.p.names[name] = n
	return true
}

func (c *compiler) classes() {
	for _, f := range c.p.files {
		for _, d := range f.Classes {
			cl := c.compileClass(d)
			sp := &c.p.subj
			if d.Kind == TargetClass {
				sp = &c.p.tgt
			}
			if !c.declare(d.Name, d.Pos, &named{pos: d.Pos, kind: d.Kind, classes: []int{len(sp.classes)}}) {
				continue
			}
			sp.classes = append(sp.classes, cl)
		}
	}
}

func (c *compiler) compileClass(d *ClassDecl) *class {
	cl := &class{name: d.Name, pos: d.Pos, kind: d.Kind}
	byKey := map[selKind]int{} // positive clause index per key
	for _, s := range d.Selectors {
		key := selKind(indexOf(selectorKeys, s.Key))
		var cur *clause
		if !s.Not {
			if i, ok := byKey[key]; ok {
				cur = &cl.clauses[i]
			}
		}
		if cur == nil {
			cl.clauses = append(cl.clauses, clause{key: key, not: s.Not})
			cur = &cl.clauses[len(cl.clauses)-1]
			if !s.Not {
				byKey[key] = len(cl.clauses) - 1
			}
		}
		for _, v := range s.Values {
			c.addValue(cur, s.Key, v)
		}
	}
	for _, cc := range cl.clauses {
		if !cc.not && len(cc.ids)+len(cc.globs)+len(cc.exes)+len(cc.pidns) == 0 && !cc.host && !cc.cont && cc.caps == 0 {
			cl.empty = true
			c.warnf(d.Pos, "%s class %q matches no process: no value of its %s selector exists on this machine", d.Kind, d.Name, selectorKeys[cc.key])
		}
	}
	return cl
}

func (c *compiler) addValue(cl *clause, key string, v Value) {
	switch cl.key {
	case selUID, selGID, selGroup:
		if lo, hi, ok := strings.Cut(v.Text, "-"); ok && isNumber(lo) {
			a, _ := strconv.ParseUint(lo, 10, 32)
			b, _ := strconv.ParseUint(hi, 10, 32)
			cl.ids = append(cl.ids, idRange{uint32(a), uint32(b)})
			return
		}
		if isNumber(v.Text) {
			n, _ := strconv.ParseUint(v.Text, 10, 32)
			cl.ids = append(cl.ids, idRange{uint32(n), uint32(n)})
			return
		}
		var id uint32
		var err error
		if cl.key == selUID {
			id, err = c.r.LookupUser(v.Text)
		} else {
			id, err = c.r.LookupGroup(v.Text)
		}
		if err != nil {
			what := "group"
			if cl.key == selUID {
				what = "user"
			}
			c.warnf(v.Pos, "%s %q does not exist on this machine: it matches no process (%v)", what, v.Text, err)
			return
		}
		cl.ids = append(cl.ids, idRange{id, id})
	case selType, selLabel, selAppArmor:
		cl.globs = append(cl.globs, compileGlob(v.Text, false))
	case selCgroup:
		cl.globs = append(cl.globs, compileGlob(v.Text, true))
	case selExe:
		dev, ino, err := c.r.StatExe(v.Text)
		if err != nil {
			c.warnf(v.Pos, "exe %s cannot be resolved on this machine: it matches no process (%v)", v.Text, err)
			return
		}
		cl.exes = append(cl.exes, devIno{dev, ino})
	case selCap:
		c2, err := kernel.ParseCap(v.Text)
		if err != nil {
			c.errorf(v.Pos, "cap: %v", err)
			return
		}
		cl.caps |= kernel.CapsOf(c2)
	case selContainer:
		switch v.Text {
		case "host":
			cl.host = true
		case "any":
			cl.cont = true
		default:
			n, _ := strconv.ParseUint(v.Text, 10, 64)
			cl.pidns = append(cl.pidns, n)
		}
	default:
		c.errorf(v.Pos, "unknown selector %q", key)
	}
}

func (c *compiler) attributes() {
	decls := map[string]*AttributeDecl{}
	var order []string
	for _, f := range c.p.files {
		for _, d := range f.Attributes {
			if c.declare(d.Name, d.Pos, &named{pos: d.Pos, attr: true}) {
				decls[d.Name] = d
				order = append(order, d.Name)
			}
		}
	}
	state := map[string]int{} // 1 visiting, 2 done
	var resolve func(name string) *named
	resolve = func(name string) *named {
		n := c.p.names[name]
		if !n.attr || state[name] == 2 {
			return n
		}
		d := decls[name]
		if state[name] == 1 {
			c.errorf(d.Pos, "attribute %q contains itself", name)
			return nil
		}
		state[name] = 1
		seen := map[int]bool{}
		for _, m := range d.Members {
			if _, ok := c.p.names[m.Text]; !ok {
				c.errorf(m.Pos, "attribute %q: unknown class %q%s", name, m.Text, c.didYouMean(m.Text))
				continue
			}
			mn := resolve(m.Text)
			if mn == nil {
				continue
			}
			if n.kind == 0 {
				n.kind = mn.kind
			} else if mn.kind != n.kind && mn.kind != 0 {
				c.errorf(m.Pos, "attribute %q mixes %s and %s classes (%q is a %s class)", name, n.kind, mn.kind, m.Text, mn.kind)
				continue
			}
			for _, id := range mn.classes {
				if !seen[id] {
					seen[id] = true
					n.classes = append(n.classes, id)
				}
			}
		}
		sort.Ints(n.classes)
		state[name] = 2
		return n
	}
	for _, name := range order {
		resolve(name)
	}
}

func (c *compiler) didYouMean(name string) string {
	names := make([]string, 0, len(c.p.names))
	for n := range c.p.names {
		names = append(names, n)
	}
	sort.Strings(names)
	return suggest.DidYouMean(name, names, 3)
}

// setBits resolves a rule's subject or target expression.
func (c *compiler) setBits(e SetExpr, kind ClassKind, n int) (any bool, inc, exc bitset) {
	inc, exc = newBitset(n), newBitset(n)
	add := func(vs []Value, into bitset) {
		for _, v := range vs {
			nm, ok := c.p.names[v.Text]
			if !ok {
				c.errorf(v.Pos, "unknown %s class %q%s", kind, v.Text, c.didYouMean(v.Text))
				continue
			}
			if nm.kind != kind && nm.kind != 0 {
				c.errorf(v.Pos, "%q is a %s class; a rule's %s must be a %s class or attribute", v.Text, nm.kind, kind, kind)
				continue
			}
			for _, id := range nm.classes {
				into.set(id)
			}
		}
	}
	add(e.Names, inc)
	add(e.Exclude, exc)
	return e.Any, inc, exc
}

func (c *compiler) compileRules() {
	ns, nt := len(c.p.subj.classes), len(c.p.tgt.classes)
	for _, f := range c.p.files {
		for _, r := range f.Rules {
			cr := &crule{src: r, id: len(c.p.rules)}
			cr.sAny, cr.sInc, cr.sExc = c.setBits(r.Subject, SubjectClass, ns)
			cr.tAny, cr.tInc, cr.tExc = c.setBits(r.Target, TargetClass, nt)
			c.p.rules = append(c.p.rules, cr)
		}
	}
}

// index builds the per-class rule lists. Neverallow rules have no
// run-time effect and are not indexed.
func (c *compiler) index() {
	p := c.p
	p.bySubj = make([][]int32, len(p.subj.classes))
	p.byTgt = make([][]int32, len(p.tgt.classes))
	for _, r := range p.rules {
		if r.src.Effect == Neverallow {
			continue
		}
		id := int32(r.id)
		if r.sAny {
			p.anySubj = append(p.anySubj, id)
		} else {
			for _, c := range r.sInc.members() {
				p.bySubj[c] = append(p.bySubj[c], id)
			}
		}
		if r.tAny {
			p.anyTgt = append(p.anyTgt, id)
		} else {
			for _, c := range r.tInc.members() {
				p.byTgt[c] = append(p.byTgt[c], id)
			}
		}
	}
}
