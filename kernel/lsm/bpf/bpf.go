// Package bpf is procgate's own BPF LSM program as the model sees it: a
// [RuleSet] of restrictions, decided at the ptrace_access_check and
// ptrace_traceme hooks exactly as the program (bpflsm/ptrace.bpf.c)
// decides them. The program runs where the BPF LSM sits in the lsm=
// order (security/bpf/hooks.c, usually last), after commoncap, Yama,
// AppArmor, SELinux and Landlock: the first module to deny ends the walk
// (security/security.c:call_int_hook), so the program only ever adds
// denials.
//
// A rule set names up to [MaxClasses] classes of processes, each a
// conjunction of clauses on the effective uid, the effective gid, the
// groups (effective gid or a supplementary group), the executable, the
// cgroup v2, the pid namespace and the permitted capabilities, each
// clause positive or negated; it denies a subject class a target
// class for READ or ATTACH access, or protects a target class from every
// subject. A denial is EPERM, which PTRACE_ATTACH and PTRACE_SEIZE return
// as is, and which /proc turns into its own errno (EACCES for environ,
// maps, mem…; a masked field in stat).
package bpf

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/procgate/procgate/kernel"
)

// The program's limits (ptrace.bpf.c: MAX_CLASSES, MAX_RANGES, MAX_EXES,
// MAX_GROUPS).
const (
	// MaxClasses bounds the classes of a rule set: a class is one bit.
	MaxClasses = 64
	// MaxRanges bounds the id ranges of each kind (uid, gid, group)
	// over all classes.
	MaxRanges = 16
	// MaxExes bounds the executables over all classes.
	MaxExes = 16
	// MaxGroups is how many of a task's supplementary groups the program
	// compares: a group selector does not see the groups past it.
	MaxGroups = 8
	// MaxPairs bounds the hashed rules (see [Layout]).
	MaxPairs = 65536
	// MaxCgroups bounds the cgroup selectors over all classes.
	MaxCgroups = 8
	// MaxCgroupName bounds a selected cgroup's name (the program
	// compares 64 bytes, a NUL among them).
	MaxCgroupName = 62
	// MaxCgroupLevel bounds a selected cgroup's level.
	MaxCgroupLevel = 15
)

// Kind is what a clause tests.
type Kind uint8

// The clause kinds, in the program's order.
const (
	KindUID    Kind = iota // the effective uid
	KindGID                // the effective gid
	KindGroup              // the effective gid or a supplementary group
	KindExe                // the executable (mm->exe_file)
	KindCgroup             // the cgroup v2 (cgroups->dfl_cgrp)
	KindPIDNS              // the pid namespace, by inode (the policy's container selectors)
	KindCap                // the permitted capabilities (cred->cap_permitted)
	numKinds
)

var kindNames = [...]string{"uid", "gid", "group", "exe", "cgroup", "pidns", "cap"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// IDRange is an inclusive range of ids.
type IDRange struct{ Lo, Hi uint32 }

// Clause is one test of a class: the task's value of Kind is in one of
// IDs (or is one of Exes, or is selected by one of Cgroups), or, when
// Not, in none of them.
type Clause struct {
	Kind    Kind
	Not     bool
	IDs     []IDRange
	Exes    []kernel.FileID
	Cgroups []CgroupSel `json:",omitempty"`
	// Caps, for a cap clause: it holds when the permitted set has one
	// of them.
	Caps kernel.CapSet `json:",omitempty"`
}

// CgroupSel selects cgroups v2 as the program does: the cgroup named
// Name, at Level (1 for a child of the root), whose parent's id is
// Parent — the cgroup itself (Self), its descendants (Below), or both;
// with Root, every cgroup (the policy's "/**"). The parent is resolved
// when the rule set is made and the cgroup matched by name, so that it
// may be removed and made again (a service's cgroup, at each restart)
// and still be selected.
type CgroupSel struct {
	Parent      uint64
	Level       uint32
	Name        string
	Self, Below bool
	Root        bool `json:",omitempty"`
}

// String renders the selector as the parent's id and a path pattern:
// "parent 7 level 2 ssh.service/**".
func (c CgroupSel) String() string {
	if c.Root {
		return "/**"
	}
	name := c.Name
	if !plainName(name) {
		name = strconv.Quote(name)
	}
	s := fmt.Sprintf("parent %d level %d %s", c.Parent, c.Level, name)
	switch {
	case c.Self && c.Below:
		s += "{,/**}"
	case c.Below:
		s += "/**"
	}
	return s
}

// plainName reports whether a cgroup name renders without quotes: it
// holds only letters, digits and ._@:+- (and does not start with a
// quote).
func plainName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._@:+-", r)) {
			return false
		}
	}
	return true
}

// ParseClause reads a clause as [Clause.String] renders it: "uid 0-99
// 1000", "not group 10", "exe dev 8:1 ino 42", "cgroup parent 7 level 2
// ssh.service/**" (a name that is not plain quoted as in Go), "cgroup
// /**".
func ParseClause(s string) (Clause, error) {
	var cl Clause
	f := strings.Fields(s)
	if len(f) > 0 && f[0] == "not" {
		cl.Not, f = true, f[1:]
	}
	if len(f) < 2 {
		return cl, fmt.Errorf("clause %q: want [not] KIND VALUE…", s)
	}
	k := slices.Index(kindNames[:], f[0])
	if k < 0 {
		return cl, fmt.Errorf("clause %q: unknown kind %q (want %s)", s, f[0], strings.Join(kindNames[:], ", "))
	}
	cl.Kind = Kind(k)
	switch cl.Kind {
	case KindUID, KindGID, KindGroup, KindPIDNS:
		for _, v := range f[1:] {
			lo, hi, isRange := strings.Cut(v, "-")
			a, err1 := strconv.ParseUint(lo, 10, 32)
			b, err2 := a, error(nil)
			if isRange {
				b, err2 = strconv.ParseUint(hi, 10, 32)
			}
			if err1 != nil || err2 != nil || b < a {
				return cl, fmt.Errorf("clause %q: %q is not an id or a range of ids", s, v)
			}
			cl.IDs = append(cl.IDs, IDRange{uint32(a), uint32(b)})
		}
	case KindExe:
		rest := f[1:]
		for len(rest) > 0 {
			var maj, min uint32
			var ino uint64
			if len(rest) < 4 || rest[0] != "dev" || rest[2] != "ino" {
				return cl, fmt.Errorf("clause %q: want exe dev MAJOR:MINOR ino N…", s)
			}
			if _, err := fmt.Sscanf(rest[1]+" "+rest[3], "%d:%d %d", &maj, &min, &ino); err != nil {
				return cl, fmt.Errorf("clause %q: %v", s, err)
			}
			cl.Exes = append(cl.Exes, kernel.FileID{Dev: kernel.MkDev(maj, min), Ino: ino})
			rest = rest[4:]
		}
	case KindCap:
		for _, v := range f[1:] {
			c, err := kernel.ParseCap(v)
			if err != nil {
				return cl, fmt.Errorf("clause %q: %v", s, err)
			}
			cl.Caps |= kernel.CapsOf(c)
		}
	case KindCgroup:
		sels, err := parseCgroupSels(strings.TrimSpace(s[strings.Index(s, "cgroup")+len("cgroup"):]))
		if err != nil {
			return cl, fmt.Errorf("clause %q: %v", s, err)
		}
		cl.Cgroups = sels
	}
	return cl, nil
}

// parseCgroupSels reads cgroup selectors as CgroupSel.String renders
// them, one after another.
func parseCgroupSels(s string) ([]CgroupSel, error) {
	var out []CgroupSel
	for s != "" {
		if rest, ok := strings.CutPrefix(s, "/**"); ok {
			out = append(out, CgroupSel{Root: true})
			s = strings.TrimSpace(rest)
			continue
		}
		var c CgroupSel
		f := strings.SplitN(s, " ", 5)
		if len(f) < 5 || f[0] != "parent" || f[2] != "level" {
			return nil, errors.New("want parent ID level N NAME[/**|{,/**}] or /**")
		}
		parent, err1 := strconv.ParseUint(f[1], 10, 64)
		level, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("parent %q level %q: want numbers", f[1], f[3])
		}
		c.Parent, c.Level, s = parent, uint32(level), f[4]
		if strings.HasPrefix(s, `"`) {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return nil, err
			}
			c.Name, _ = strconv.Unquote(q)
			s = s[len(q):]
		} else {
			end := strings.IndexFunc(s, func(r rune) bool { return r == ' ' || r == '/' || r == '{' })
			if end < 0 {
				end = len(s)
			}
			c.Name, s = s[:end], s[end:]
		}
		switch {
		case strings.HasPrefix(s, "{,/**}"):
			c.Self, c.Below, s = true, true, s[len("{,/**}"):]
		case strings.HasPrefix(s, "/**"):
			c.Below, s = true, s[len("/**"):]
		default:
			c.Self = true
		}
		if s != "" && s[0] != ' ' {
			return nil, fmt.Errorf("unexpected %q after cgroup %s", s, c.Name)
		}
		out = append(out, c)
		s = strings.TrimSpace(s)
	}
	return out, nil
}

// Example returns a cgroup path c selects: its own, or, when it selects
// only descendants, a child's ("…"). The directories above the parent
// have id 0 (no cgroup's).
func (c CgroupSel) Example() []kernel.CgroupNode {
	if c.Root {
		return []kernel.CgroupNode{{ID: 1}}
	}
	if c.Level < 1 {
		return nil // selects nothing (Validate refuses it)
	}
	path := make([]kernel.CgroupNode, c.Level+1, c.Level+2)
	path[c.Level-1].ID = c.Parent
	path[c.Level].Name = c.Name
	if !c.Self {
		path = append(path, kernel.CgroupNode{Name: "…"})
	}
	return path
}

// Selects reports whether c selects the cgroup at the end of path (the
// root first), as ptrace.bpf.c:read_cgroups does.
func (c *CgroupSel) Selects(path []kernel.CgroupNode) bool {
	if len(path) == 0 {
		return false
	}
	if c.Root {
		return true
	}
	level := len(path) - 1
	L := int(c.Level)
	if L < 1 || L > level || path[L].Name != c.Name || path[L-1].ID != c.Parent {
		return false
	}
	return c.Self && level == L || c.Below && level > L
}

// String renders the clause as a policy selector line: "uid 0-99",
// "not group 10", "exe dev 8:1 ino 42".
func (cl Clause) String() string {
	var vals []string
	for _, r := range cl.IDs {
		if r.Lo == r.Hi {
			vals = append(vals, fmt.Sprint(r.Lo))
		} else {
			vals = append(vals, fmt.Sprintf("%d-%d", r.Lo, r.Hi))
		}
	}
	for _, e := range cl.Exes {
		vals = append(vals, fmt.Sprintf("dev %d:%d ino %d", e.Dev>>20, e.Dev&(1<<20-1), e.Ino))
	}
	for _, c := range cl.Cgroups {
		vals = append(vals, c.String())
	}
	for _, c := range cl.Caps.Caps() {
		vals = append(vals, c.String())
	}
	s := cl.Kind.String() + " " + strings.Join(vals, " ")
	if cl.Not {
		s = "not " + s
	}
	return s
}

// Class is a set of processes: those every clause holds. A class
// without clauses holds every process.
type Class struct {
	Name    string
	Clauses []Clause
}

// Reads reports whether a clause of c is of kind k: whether the program
// reads that fact of a task to place it in c.
func (c *Class) Reads(k Kind) bool {
	return slices.ContainsFunc(c.Clauses, func(cl Clause) bool { return cl.Kind == k })
}

// Access is what a rule restricts: READ or ATTACH modes.
type Access uint8

// The accesses.
const (
	Read Access = iota
	Attach
)

func (a Access) String() string {
	if a == Attach {
		return "attach"
	}
	return "read"
}

// Rule denies Subject the Target class with Access; Subject < 0 means
// every subject (protect).
type Rule struct {
	Subject, Target int
	Access          Access
	// Text is the policy statement, for explanations.
	Text string
	// Ref names the policy rule as audit records do ("protect@agent.pol:17");
	// "" for a rule set not compiled from a policy.
	Ref string `json:"ref,omitempty"`
}

// RuleSet is what the program enforces.
type RuleSet struct {
	Classes []Class
	Rules   []Rule
	// Generation numbers the rule set (a policy's load).
	Generation uint64
	// ExemptCgroup is the cgroup v2 id whose processes no rule
	// restricts at ptrace_access_check (procgate's own reader: the
	// broker's and the FUSE mount's); 0 for none. The subject is the
	// caller there; at ptrace_traceme it is the parent, whose cgroup the
	// program does not read, and nothing is exempt.
	ExemptCgroup uint64 `json:"exempt_cgroup,omitempty"`
}

// Key is a class that holds the processes with one value of one kind:
// a single positive clause of one uid, one gid or one executable. A rule
// between such classes (or protecting one) is hashed (see [Layout]).
type Key struct {
	Kind Kind
	// ID is the uid or gid; Exe the executable.
	ID  uint32
	Exe kernel.FileID
}

// Key returns the class's key, when it has one.
func (c *Class) Key() (Key, bool) {
	if len(c.Clauses) != 1 {
		return Key{}, false
	}
	cl := &c.Clauses[0]
	switch {
	case cl.Not:
	case (cl.Kind == KindUID || cl.Kind == KindGID) && len(cl.IDs) == 1 && cl.IDs[0].Lo == cl.IDs[0].Hi && len(cl.Exes) == 0:
		return Key{Kind: cl.Kind, ID: cl.IDs[0].Lo}, true
	case cl.Kind == KindExe && len(cl.Exes) == 1 && len(cl.IDs) == 0:
		return Key{Kind: KindExe, Exe: cl.Exes[0]}, true
	}
	return Key{}, false
}

// keyOf returns the key of kind k of a task the program reads as m:
// its euid, its egid or its executable; none for an executable it does
// not have.
func keyOf(k Kind, m Match) (Key, bool) {
	switch k {
	case KindUID:
		return Key{Kind: KindUID, ID: m.EUID}, true
	case KindGID:
		return Key{Kind: KindGID, ID: m.EGID}, true
	case KindExe:
		if m.Exe != nil {
			return Key{Kind: KindExe, Exe: *m.Exe}, true
		}
	}
	return Key{}, false
}

// Layout is how the program holds a rule set. A rule whose target class
// has a [Key] and whose subject is every process or a class with a Key
// is hashed: an entry of a hash map keyed by the two values, looked up
// in constant time (up to [MaxPairs]). Every other rule is a rule of
// class bits: its classes are General, up to [MaxClasses], each a bit in
// the order General lists them. A Layout decides as the program does;
// lay a rule set out once and keep the Layout where it decides often.
type Layout struct {
	// General are the classes of the rules of class bits, by class
	// index, in bit order; Bit maps a class index to its bit.
	General []int
	Bit     map[int]int
	// Hashed says, per rule, whether it is hashed.
	Hashed []bool
	// Pairs counts the hashed entries: one per pair of keys and access.
	Pairs int

	rs *RuleSet
	// pairs maps each hashed entry to its first rule, as the program's
	// hash map does (bpflsm: encode); bitRules are the indexes of the
	// rules of class bits, in order.
	pairs    map[pairKey]int
	bitRules []int
}

// pairKey is a hashed entry: the subject's key (none with any), the
// target's, and the access.
type pairKey struct {
	s, t Key
	any  bool
	a    Access
}

// Layout lays the rule set out as the program holds it.
func (rs *RuleSet) Layout() *Layout {
	l := &Layout{Bit: map[int]int{}, Hashed: make([]bool, len(rs.Rules)), rs: rs, pairs: map[pairKey]int{}}
	general := func(c int) {
		if _, ok := l.Bit[c]; !ok {
			l.Bit[c] = len(l.General)
			l.General = append(l.General, c)
		}
	}
	for i, r := range rs.Rules {
		if r.Target < 0 || r.Target >= len(rs.Classes) || r.Subject >= len(rs.Classes) {
			continue // Validate refuses it
		}
		tk, tok := rs.Classes[r.Target].Key()
		var sk Key
		sok := r.Subject < 0
		if !sok {
			sk, sok = rs.Classes[r.Subject].Key()
		}
		if tok && sok {
			l.Hashed[i] = true
			k := pairKey{sk, tk, r.Subject < 0, r.Access}
			if _, dup := l.pairs[k]; !dup { // the first rule of the key names it
				l.pairs[k] = i
			}
			continue
		}
		if r.Subject >= 0 {
			general(r.Subject)
		}
		general(r.Target)
		l.bitRules = append(l.bitRules, i)
	}
	l.Pairs = len(l.pairs)
	return l
}

// Validate checks the rule set against the program's limits.
func (rs *RuleSet) Validate() error { return rs.Layout().Validate() }

// Validate checks the rule set laid out against the program's limits
// (one who lays it out to encode it need not lay it out again).
func (l *Layout) Validate() error {
	rs := l.rs
	for _, r := range rs.Rules {
		if r.Target < 0 || r.Target >= len(rs.Classes) || r.Subject >= len(rs.Classes) {
			return fmt.Errorf("bpf rule set: rule %q names a class out of range", r.Text)
		}
	}
	if len(l.General) > MaxClasses {
		return fmt.Errorf("bpf rule set: %d classes in rules the program cannot hash, it holds %d (a rule is hashed when its target, and its subject unless every process, is one uid, gid or executable)", len(l.General), MaxClasses)
	}
	if l.Pairs > MaxPairs {
		return fmt.Errorf("bpf rule set: %d hashed rules, the program holds %d", l.Pairs, MaxPairs)
	}
	general := map[int]bool{}
	for _, ci := range l.General {
		general[ci] = true
	}
	var ranges [numKinds]int
	for ci, c := range rs.Classes {
		var positive [numKinds]bool
		for _, cl := range c.Clauses {
			if cl.Kind >= numKinds {
				return fmt.Errorf("bpf rule set: class %s: unknown clause kind %d", c.Name, cl.Kind)
			}
			if !cl.Not {
				if positive[cl.Kind] {
					return fmt.Errorf("bpf rule set: class %s: two positive %s clauses (merge their values into one)", c.Name, cl.Kind)
				}
				positive[cl.Kind] = true
			}
			for _, r := range cl.IDs {
				if r.Lo > r.Hi {
					return fmt.Errorf("bpf rule set: class %s: %s range %d-%d is empty", c.Name, cl.Kind, r.Lo, r.Hi)
				}
			}
			for _, g := range cl.Cgroups {
				switch {
				case g.Root:
				case len(g.Name) == 0 || len(g.Name) > MaxCgroupName || strings.ContainsAny(g.Name, "/\x00"):
					return fmt.Errorf("bpf rule set: class %s: cgroup name %q: want 1 to %d bytes, no '/' or NUL", c.Name, g.Name, MaxCgroupName)
				case g.Level < 1 || g.Level > MaxCgroupLevel:
					return fmt.Errorf("bpf rule set: class %s: cgroup %s: level %d out of 1-%d", c.Name, g.Name, g.Level, MaxCgroupLevel)
				case !g.Self && !g.Below:
					return fmt.Errorf("bpf rule set: class %s: cgroup %s selects neither itself nor its descendants", c.Name, g.Name)
				}
			}
			if !general[ci] {
				continue // hashed, or in no rule
			}
			switch cl.Kind {
			case KindExe:
				ranges[KindExe] += len(cl.Exes)
			case KindCgroup:
				ranges[KindCgroup] += len(cl.Cgroups)
			case KindCap:
				ranges[KindCap]++
			default:
				ranges[cl.Kind] += len(cl.IDs)
			}
		}
	}
	for k, n := range ranges {
		limit := MaxRanges
		switch Kind(k) {
		case KindExe:
			limit = MaxExes
		case KindCgroup:
			limit = MaxCgroups
		}
		if n > limit {
			return fmt.Errorf("bpf rule set: %d %s values over all classes, the program holds %d", n, Kind(k), limit)
		}
	}
	return nil
}

// Match is what the program reads of a task.
type Match struct {
	EUID, EGID uint32
	Groups     []uint32
	// Exe is the executable; nil for a task without an mm (a kernel
	// thread, an exited task), which no exe clause holds.
	Exe *kernel.FileID
	// Cgroup is the task's cgroup v2 path (kernel.Task.Cgroup); nil when
	// unknown, which no cgroup selector selects.
	Cgroup []kernel.CgroupNode
	// PIDNS is the inode of the task's pid namespace; 0 when unknown,
	// which no pidns clause holds.
	PIDNS uint32
	// CapPermitted is the task's permitted capability set.
	CapPermitted kernel.CapSet
}

// MatchOf reads t as the program does.
func MatchOf(t *kernel.Task) Match {
	m := Match{EUID: uint32(t.Cred.EUID), EGID: uint32(t.Cred.EGID)}
	for _, g := range t.Cred.Groups {
		m.Groups = append(m.Groups, uint32(g))
	}
	if t.MM != nil {
		m.Exe = t.MM.Exe
	}
	m.Cgroup = t.Cgroup
	m.PIDNS = t.PIDNSInode
	m.CapPermitted = t.Cred.CapPermitted
	return m
}

func inRanges(rs []IDRange, id uint32) bool {
	for _, r := range rs {
		if id >= r.Lo && id <= r.Hi {
			return true
		}
	}
	return false
}

func (cl *Clause) holds(m Match) bool {
	switch cl.Kind {
	case KindUID:
		return inRanges(cl.IDs, m.EUID)
	case KindGID:
		return inRanges(cl.IDs, m.EGID)
	case KindGroup:
		if inRanges(cl.IDs, m.EGID) {
			return true
		}
		for i, g := range m.Groups {
			if i == MaxGroups {
				break
			}
			if inRanges(cl.IDs, g) {
				return true
			}
		}
		return false
	case KindExe:
		return m.Exe != nil && slices.Contains(cl.Exes, *m.Exe)
	case KindPIDNS:
		return m.PIDNS != 0 && inRanges(cl.IDs, m.PIDNS)
	case KindCap:
		return m.CapPermitted&cl.Caps != 0
	case KindCgroup:
		for i := range cl.Cgroups {
			if cl.Cgroups[i].Selects(m.Cgroup) {
				return true
			}
		}
	}
	return false
}

// holds reports whether class i holds a task the program reads as m.
func (rs *RuleSet) holds(i int, m Match) bool {
	for j := range rs.Classes[i].Clauses {
		cl := &rs.Classes[i].Clauses[j]
		if cl.holds(m) == cl.Not {
			return false
		}
	}
	return true
}

// ClassesOf returns the general classes (Layout.General) m belongs to,
// one bit each in l's order (ptrace.bpf.c: classes_of).
func (l *Layout) ClassesOf(m Match) uint64 {
	var in uint64
	for bit, i := range l.General {
		if l.rs.holds(i, m) {
			in |= 1 << bit
		}
	}
	return in
}

// hashedKinds is the program's order of hashed lookups: protect rules by
// the target's kind, then pairs by the subject's kind and the target's
// (ptrace.bpf.c: judge).
var hashedKinds = [...]Kind{KindUID, KindGID, KindExe}

// Decide returns the rule that denies subject the target with access a,
// the one the program finds first (ptrace.bpf.c: judge): protect rules
// of class bits, hashed protect rules (by the target's kind: uid, gid,
// exe), deny rules of class bits (by subject bit), hashed deny rules (by
// the subject's kind, then the target's); within each, the first in the
// rule set's order. Nil when none does. It lays the rule set out for
// this one question: see [Layout.Decide].
func (rs *RuleSet) Decide(subject, target Match, a Access) *Rule {
	return rs.Layout().Decide(subject, target, a)
}

// Decide is [RuleSet.Decide] with the rule set laid out.
func (l *Layout) Decide(subject, target Match, a Access) *Rule {
	tgt := l.ClassesOf(target)
	if r := l.decideClasses(0, tgt, a); r != nil {
		return r
	}
	if r := l.decideHashed(nil, target, a); r != nil {
		return r
	}
	if r := l.decideClasses(l.ClassesOf(subject), tgt, a); r != nil {
		return r
	}
	return l.decideHashed(&subject, target, a)
}

// decideHashed returns the first hashed rule of subject (nil: protect
// rules) against target, in the program's order: one lookup per pair of
// kinds, as the program makes them.
func (l *Layout) decideHashed(subject *Match, target Match, a Access) *Rule {
	skinds := hashedKinds[:]
	if subject == nil {
		skinds = []Kind{numKinds} // every subject
	}
	for _, sk := range skinds {
		for _, tk := range hashedKinds {
			k := pairKey{any: subject == nil, a: a}
			var ok bool
			if k.t, ok = keyOf(tk, target); !ok {
				continue
			}
			if subject != nil {
				if k.s, ok = keyOf(sk, *subject); !ok {
					continue
				}
			}
			if i, ok := l.pairs[k]; ok {
				return &l.rs.Rules[i]
			}
		}
	}
	return nil
}

// DecideClasses names the rule of a denial the program reports
// (bpflsm.Denial): rule, when not 0, is a hashed rule's index plus one;
// otherwise subj and tgt are the general classes of the two, and the
// rule is the first protect rule of a target class, else the first rule
// of the lowest subject bit against a target class. Nil when none fits.
func (l *Layout) DecideClasses(rule uint32, subj, tgt uint64, a Access) *Rule {
	if rule != 0 {
		if int(rule) > len(l.rs.Rules) {
			return nil
		}
		return &l.rs.Rules[rule-1]
	}
	if r := l.decideClasses(0, tgt, a); r != nil {
		return r
	}
	return l.decideClasses(subj, tgt, a)
}

// decideClasses is the program's decision over class bits: with subj 0,
// its protect rules.
func (l *Layout) decideClasses(subj, tgt uint64, a Access) *Rule {
	rules := l.rs.Rules
	inTarget := func(r *Rule) bool {
		b, ok := l.Bit[r.Target]
		return ok && tgt&(1<<b) != 0
	}
	if subj == 0 {
		for _, i := range l.bitRules {
			if r := &rules[i]; r.Subject < 0 && r.Access == a && inTarget(r) {
				return r
			}
		}
		return nil
	}
	for subj != 0 {
		b := bits.TrailingZeros64(subj)
		subj &^= 1 << b
		if b >= len(l.General) {
			break
		}
		for _, i := range l.bitRules {
			if r := &rules[i]; r.Subject == l.General[b] && r.Access == a && inTarget(r) {
				return r
			}
		}
	}
	return nil
}

// Module is the program with its rule set, as a module of the model.
// Rules must not change once it decides: it lays them out once.
type Module struct {
	Rules *RuleSet

	once   sync.Once
	layout *Layout
}

// lastModule is ModuleOf's last module.
var lastModule atomic.Pointer[Module]

// ModuleOf returns a Module of rs: the one it returned last when rs is
// the same rule set, so that a reader that builds a world per question
// under one rule set (the live model, the broker) lays it out once. A
// Module is safe for concurrent use.
func ModuleOf(rs *RuleSet) *Module {
	if m := lastModule.Load(); m != nil && m.Rules == rs {
		return m
	}
	m := &Module{Rules: rs}
	lastModule.Store(m)
	return m
}

// laid returns the rule set laid out, once.
func (m *Module) laid() *Layout {
	m.once.Do(func() { m.layout = m.Rules.Layout() })
	return m.layout
}

var _ kernel.LSM = (*Module)(nil)

// Name returns "bpf", as /sys/kernel/security/lsm lists the BPF LSM.
func (*Module) Name() string { return "bpf" }

func access(mode kernel.Mode) Access {
	if mode&kernel.ModeAttach != 0 {
		return Attach
	}
	return Read
}

func (m *Module) decide(e kernel.Env, subject, target *kernel.Task, a Access, hook string, exempt bool) kernel.Errno {
	if m.Rules == nil {
		e.T.Add("bpf", kernel.Skip, "no procgate rule set loaded")
		return kernel.OK
	}
	if exempt && m.Rules.ExemptCgroup != 0 && subject.CgroupID == m.Rules.ExemptCgroup {
		e.T.Add("bpf", kernel.Pass, fmt.Sprintf("%s: %s runs in the exempt cgroup %d (procgate's reader)", hook, subject.Name, subject.CgroupID))
		return kernel.OK
	}
	r := m.laid().Decide(MatchOf(subject), MatchOf(target), a)
	if r == nil {
		e.T.Add("bpf", kernel.Pass, fmt.Sprintf("%s: no procgate rule restricts %s access of %s to %s", hook, a, subject.Name, target.Name))
		return kernel.OK
	}
	who := "every subject"
	if r.Subject >= 0 {
		who = "class " + m.Rules.Classes[r.Subject].Name
	}
	e.T.Add("bpf", kernel.Deny, fmt.Sprintf("%s: procgate rule %q denies %s %s access to class %s (EPERM)", hook, strings.TrimSpace(r.Text), who, a, m.Rules.Classes[r.Target].Name))
	return kernel.EPERM
}

// PtraceAccessCheck is the program at ptrace_access_check: the tracer
// (current) is the subject, the tracee the target.
func (m *Module) PtraceAccessCheck(e kernel.Env, tracer, tracee *kernel.Task, mode kernel.Mode) kernel.Errno {
	return m.decide(e, tracer, tracee, access(mode), "ptrace_access_check", true)
}

// PtraceTraceme is the program at ptrace_traceme: the parent, the
// tracer to be, is the subject of an attach to the child.
func (m *Module) PtraceTraceme(e kernel.Env, parent, child *kernel.Task) kernel.Errno {
	return m.decide(e, parent, child, Attach, "ptrace_traceme", false)
}

// Capable never denies: the program has no capable hook.
func (*Module) Capable(kernel.Env, *kernel.Task, *kernel.UserNS, kernel.Cap, bool) kernel.Errno {
	return kernel.OK
}
