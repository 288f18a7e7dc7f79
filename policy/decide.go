package policy

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
)

// Decision is the answer for one item.
type Decision struct {
	// Allowed is the access verdict. Default deny: an item is allowed only
	// when an allow rule grants it and no deny or protect rule refuses it.
	Allowed bool
	// Audit reports whether the enforcement point must write an audit
	// record: for a grant when an auditallow rule (or option default_audit
	// all) asks for it; for a denial unless a dontaudit rule (or option
	// default_audit none) silences it. A silenced denial is still counted
	// (see [Policy.Counters]).
	Audit bool
	// Rule is the deciding rule, for counting decisions by rule (see
	// [Policy.Rule]): for a grant the first allow rule in file order that
	// grants the item; for a denial the first deny or protect rule that
	// refuses it, or [NoRule] when the denial is the default (no rule
	// granted the item).
	Rule RuleID
}

// RuleID names a rule of one compiled policy: its index in file order.
type RuleID int32

// NoRule is the [Decision.Rule] of a default denial.
const NoRule RuleID = -1

// maxInterned bounds the distinct class sets a policy with more than 64
// classes of one kind remembers; past it, decisions are computed without
// the cache.
const maxInterned = 1 << 20

// space is the classes of one kind and the interned sets of them.
type space struct {
	classes []*class
	words   int
	mu      sync.RWMutex
	ids     map[string]uint64 // set bytes → key, when words > 1
	sets    []bitset          // key → set
}

func (sp *space) init() {
	sp.words = (len(sp.classes) + 63) / 64
	if sp.words > 1 {
		sp.ids = make(map[string]uint64)
	}
}

// classify fills b (len sp.words) with the classes v belongs to.
func (sp *space) classify(v *view, b bitset) {
	for i, c := range sp.classes {
		if c.match(v) {
			b.set(i)
		}
	}
}

// key returns the cache key of v's class set: the set itself when there
// are at most 64 classes, else its interned number. ok is false when the
// set cannot be interned; bits then holds it (else bits is nil).
func (sp *space) key(v *view) (key uint64, bits bitset, ok bool) {
	if sp.words <= 1 {
		for i, c := range sp.classes {
			if c.match(v) {
				key |= 1 << uint(i)
			}
		}
		return key, nil, true
	}
	var arr [16]uint64
	var b bitset
	if sp.words <= len(arr) {
		b = arr[:sp.words]
	} else {
		b = make(bitset, sp.words)
	}
	sp.classify(v, b)
	key, ok = sp.intern(b)
	if !ok {
		return 0, append(bitset(nil), b...), false
	}
	return key, nil, true
}

func (sp *space) intern(b bitset) (uint64, bool) {
	var kb [16 * 8]byte
	var buf []byte
	if len(b)*8 <= len(kb) {
		buf = kb[:len(b)*8]
	} else {
		buf = make([]byte, len(b)*8)
	}
	for i, w := range b {
		binary.LittleEndian.PutUint64(buf[i*8:], w)
	}
	sp.mu.RLock()
	id, ok := sp.ids[string(buf)]
	sp.mu.RUnlock()
	if ok {
		return id, true
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if id, ok := sp.ids[string(buf)]; ok {
		return id, true
	}
	if len(sp.sets) >= maxInterned {
		return 0, false
	}
	id = uint64(len(sp.sets))
	sp.sets = append(sp.sets, append(bitset(nil), b...))
	sp.ids[string(buf)] = id
	return id, true
}

// bits returns the set behind a key.
func (sp *space) bits(key uint64) bitset {
	if sp.words <= 1 {
		return bitset{key}
	}
	sp.mu.RLock()
	defer sp.mu.RUnlock()
	return sp.sets[key]
}

// The decision cache: a direct-mapped table of immutable entries, read
// without locks (RCU-like: a miss publishes a new entry with one atomic
// store), like the kernel AVC's node table.
const (
	avcSlots  = 1 << 13
	ctrShards = 16
)

type avEntry struct {
	s, t  uint64
	facts Relation
	vec
}

// vec is the decision for every item of one (subject set, target set,
// facts).
type vec struct {
	allowed    ItemSet
	auditallow ItemSet
	dontaudit  ItemSet
	rule       [numItems]RuleID // the deciding rule of each item
}

type counterShard struct {
	lookups, misses, denied, silent, uncached atomic.Uint64
	_                                         [24]byte // keep shards on separate cache lines
}

type avc struct {
	slots [avcSlots]atomic.Pointer[avEntry]
	ctr   [ctrShards]counterShard
}

func hashKey(s, t uint64, f Relation) uint64 {
	h := s*0x9E3779B97F4A7C15 ^ t*0xC2B2AE3D27D4EB4F ^ uint64(f)*0x165667B19E3779F9
	h ^= h >> 29
	h *= 0xBF58476D1CE4E5B9
	return h ^ h>>32
}

// Counters are the decision cache's and the verdicts' statistics, named
// after /sys/fs/selinux/avc/cache_stats where they correspond.
type Counters struct {
	Lookups, Hits, Misses uint64
	// Uncached counts decisions computed without the cache (class sets
	// beyond the interning bound, or stale sets).
	Uncached uint64
	// Denied counts denials; Dontaudited those of them whose record a
	// dontaudit rule (or default_audit none) suppressed.
	Denied, Dontaudited uint64
}

// Counters returns the statistics so far.
func (p *Policy) Counters() Counters {
	var c Counters
	for i := range p.cache.ctr {
		sh := &p.cache.ctr[i]
		c.Lookups += sh.lookups.Load()
		c.Misses += sh.misses.Load()
		c.Denied += sh.denied.Load()
		c.Dontaudited += sh.silent.Load()
		c.Uncached += sh.uncached.Load()
	}
	c.Hits = c.Lookups - c.Misses
	return c
}

// Stats returns the cache counters in the kernel AVC's terms.
func (p *Policy) Stats() (lookups, hits, misses uint64) {
	c := p.Counters()
	return c.Lookups, c.Hits, c.Misses
}

// Relate computes the relational facts between s and t. rel carries the
// facts only the caller knows (see [CallerRelations]); other bits in it
// are ignored.
func (p *Policy) Relate(s *Subject, t *Target, rel Relation) Relation {
	return relate(s, t, rel, p.opts.container)
}

// NumRules returns the number of rules: the [RuleID] values are 0 to
// NumRules()-1.
func (p *Policy) NumRules() int { return len(p.rules) }

// Rule returns the rule id names; ok is false for [NoRule] and ids out of
// range.
func (p *Policy) Rule(id RuleID) (ref RuleRef, ok bool) {
	if id < 0 || int(id) >= len(p.rules) {
		return RuleRef{}, false
	}
	return p.rules[id].ref(), true
}

// Decide answers whether s may have item it of t. rel carries the facts
// only the caller knows ([RelDescendant]); the others are computed. It
// does not allocate on a cache hit and is safe for concurrent use.
// Decide classifies both processes on every call; a caller that decides
// many items for the same processes can classify once with
// [Policy.SubjectSet] and [Policy.TargetSet] and call [Policy.DecideSets].
func (p *Policy) Decide(s *Subject, t *Target, rel Relation, it Item) Decision {
	if s == nil || t == nil {
		return p.refuse(0)
	}
	sv, tv := s.view(), t.view()
	sk, sb, sok := p.subj.key(&sv)
	tk, tb, tok := p.tgt.key(&tv)
	facts := relate(s, t, rel, p.opts.container)
	if !sok || !tok {
		return p.uncached(sk, sb, sok, tk, tb, tok, facts, it)
	}
	return p.decideKeys(sk, tk, facts, it)
}

// SubjectSet is a subject's class membership under one policy. It is a
// small value, cheap to keep per connection.
type SubjectSet struct {
	p    *Policy
	key  uint64
	bits bitset // set when the key could not be interned
}

// TargetSet is a target's class membership under one policy.
type TargetSet struct {
	p    *Policy
	key  uint64
	bits bitset
}

// SubjectSet classifies a subject.
func (p *Policy) SubjectSet(s *Subject) SubjectSet {
	v := s.view()
	k, b, _ := p.subj.key(&v)
	return SubjectSet{p, k, b}
}

// TargetSet classifies a target. The set depends on the target's
// attributes only (not on its dumpability, a relational fact), so it can
// be cached per (pid, start time).
func (p *Policy) TargetSet(t *Target) TargetSet {
	v := t.view()
	k, b, _ := p.tgt.key(&v)
	return TargetSet{p, k, b}
}

// Classes returns the names of the subject classes in the set.
func (ss SubjectSet) Classes() []string {
	if ss.p == nil {
		return nil
	}
	return ss.p.subj.names(ss.bitsOf())
}

func (ss SubjectSet) bitsOf() bitset {
	if ss.bits != nil {
		return ss.bits
	}
	return ss.p.subj.bits(ss.key)
}

// Classes returns the names of the target classes in the set.
func (ts TargetSet) Classes() []string {
	if ts.p == nil {
		return nil
	}
	return ts.p.tgt.names(ts.bitsOf())
}

func (ts TargetSet) bitsOf() bitset {
	if ts.bits != nil {
		return ts.bits
	}
	return ts.p.tgt.bits(ts.key)
}

func (sp *space) names(b bitset) []string {
	var out []string
	for _, i := range b.members() {
		if i < len(sp.classes) {
			out = append(out, sp.classes[i].name)
		}
	}
	return out
}

// DecideSets is [Policy.Decide] for processes classified beforehand. facts
// must come from [Policy.Relate]. Sets classified by another policy (one
// replaced by a reload) are refused: fail closed, reclassify.
func (p *Policy) DecideSets(ss SubjectSet, ts TargetSet, facts Relation, it Item) Decision {
	if ss.p != p || ts.p != p {
		return p.refuse(0)
	}
	if ss.bits != nil || ts.bits != nil {
		return p.uncached(ss.key, ss.bits, ss.bits == nil, ts.key, ts.bits, ts.bits == nil, facts, it)
	}
	return p.decideKeys(ss.key, ts.key, facts, it)
}

func (p *Policy) decideKeys(sk, tk uint64, facts Relation, it Item) Decision {
	h := hashKey(sk, tk, facts)
	sh := &p.cache.ctr[h&(ctrShards-1)]
	sh.lookups.Add(1)
	slot := &p.cache.slots[(h>>4)&(avcSlots-1)]
	e := slot.Load()
	if e == nil || e.s != sk || e.t != tk || e.facts != facts {
		sh.misses.Add(1)
		e = &avEntry{s: sk, t: tk, facts: facts}
		p.compute(&e.vec, p.subj.bits(sk), p.tgt.bits(tk), facts)
		slot.Store(e)
	}
	return p.verdict(sh, &e.vec, it)
}

func (p *Policy) uncached(sk uint64, sb bitset, sok bool, tk uint64, tb bitset, tok bool, facts Relation, it Item) Decision {
	if sok {
		sb = p.subj.bits(sk)
	}
	if tok {
		tb = p.tgt.bits(tk)
	}
	sh := &p.cache.ctr[0]
	sh.uncached.Add(1)
	var v vec
	p.compute(&v, sb, tb, facts)
	return p.verdict(sh, &v, it)
}

// refuse denies without looking (bad arguments, stale sets).
func (p *Policy) refuse(it Item) Decision {
	sh := &p.cache.ctr[0]
	sh.uncached.Add(1)
	return p.verdict(sh, &noVec, it)
}

// noVec denies everything, by no rule.
var noVec = func() vec {
	var v vec
	for i := range v.rule {
		v.rule[i] = NoRule
	}
	return v
}()

func (p *Policy) verdict(sh *counterShard, v *vec, it Item) Decision {
	bit := it.Set() // 0 for an item outside the vocabulary: denied
	if bit == 0 {
		v = &noVec
	}
	rule := NoRule
	if bit != 0 {
		rule = v.rule[it]
	}
	if v.allowed&bit != 0 {
		return Decision{Allowed: true, Audit: v.auditallow&bit != 0 || p.opts.audit == auditAll, Rule: rule}
	}
	sh.denied.Add(1)
	if p.opts.audit == auditNone || v.dontaudit&bit != 0 {
		sh.silent.Add(1)
		return Decision{Rule: rule}
	}
	return Decision{Audit: true, Rule: rule}
}

// compute is the cache miss: the vector of every item for one (subject
// set, target set, facts). The candidates are the rules indexed under the
// classes of one side (or `*`), whichever side lists fewer; each is then
// checked against the other side, its exclusions and conditions. A rule
// listed under several classes is folded more than once, which is
// harmless: folding is idempotent. Deny and protect beat allow; order
// does not matter.
func (p *Policy) compute(v *vec, S, T bitset, facts Relation) {
	ns, nt := len(p.anySubj), len(p.anyTgt)
	forEach(S, func(c int) {
		if c < len(p.bySubj) {
			ns += len(p.bySubj[c])
		}
	})
	forEach(T, func(c int) {
		if c < len(p.byTgt) {
			nt += len(p.byTgt[c])
		}
	})
	var f fold
	if ns <= nt {
		f.rules(p, p.anySubj, S, T, facts, false)
		for i, w := range S {
			for ; w != 0; w &= w - 1 {
				if c := i*64 + tz(w); c < len(p.bySubj) {
					f.rules(p, p.bySubj[c], S, T, facts, false)
				}
			}
		}
	} else {
		f.rules(p, p.anyTgt, S, T, facts, true)
		for i, w := range T {
			for ; w != 0; w &= w - 1 {
				if c := i*64 + tz(w); c < len(p.byTgt) {
					f.rules(p, p.byTgt[c], S, T, facts, true)
				}
			}
		}
	}
	v.allowed, v.auditallow, v.dontaudit = f.allow&^f.deny, f.auditallow, f.dontaudit
	for i := range v.rule {
		bit := Item(i).Set()
		switch {
		case v.allowed&bit != 0:
			v.rule[i] = f.allowBy[i] - 1
		case f.deny&bit != 0:
			v.rule[i] = f.denyBy[i] - 1
		default:
			v.rule[i] = NoRule
		}
	}
}

func forEach(b bitset, fn func(int)) {
	for i, w := range b {
		for ; w != 0; w &= w - 1 {
			fn(i*64 + tz(w))
		}
	}
}

// fold accumulates rule effects into item masks, and per item the first
// (lowest-numbered) allow and deny rule, plus one (0: none).
type fold struct {
	allow, deny, auditallow, dontaudit ItemSet
	allowBy, denyBy                    [numItems]RuleID
}

// first records rule id as the first of its kind for every item in items.
func first(by *[numItems]RuleID, items ItemSet, id int) {
	for m := uint64(items); m != 0; m &= m - 1 {
		if i := tz(m); i < int(numItems) && (by[i] == 0 || RuleID(id)+1 < by[i]) {
			by[i] = RuleID(id) + 1
		}
	}
}

// rules folds the listed rules in; bySubject says which side the list
// came from, so the other side is checked.
func (f *fold) rules(p *Policy, ids []int32, S, T bitset, facts Relation, byTarget bool) {
	for _, id := range ids {
		r := p.rules[id]
		if byTarget {
			if !r.sAny && !r.sInc.intersects(S) {
				continue
			}
		} else if !r.tAny && !r.tInc.intersects(T) {
			continue
		}
		if !r.applies(S, T, facts) {
			continue
		}
		switch r.src.Effect {
		case Allow:
			f.allow |= r.src.Items
			first(&f.allowBy, r.src.Items, r.id)
		case Deny, Protect:
			f.deny |= r.src.Items
			first(&f.denyBy, r.src.Items, r.id)
		case AuditAllow:
			f.auditallow |= r.src.Items
		case DontAudit:
			f.dontaudit |= r.src.Items
		}
	}
}

// applies reports whether a rule whose classes are indexed under S and T
// matches: no excluded class, its conditions hold and, for an allow rule
// without nondumpable, the target is dumpable.
func (r *crule) applies(S, T bitset, facts Relation) bool {
	if r.sExc.intersects(S) || r.tExc.intersects(T) {
		return false
	}
	if facts&r.src.When != r.src.When || facts&r.src.WhenNot != 0 {
		return false
	}
	if r.src.Effect == Allow && facts&RelNondumpable != 0 && !r.src.Nondumpable {
		return false
	}
	return true
}
