package selinux

// Policy is a compiled type-enforcement policy. It is immutable and safe
// for concurrent use.
type Policy struct {
	types     []string         // type index → name
	attrNames []string         // attribute index → name
	index     map[string]ident // name → type or attribute
	// typeKeys[t] lists the avtab keys type t answers to: itself, each
	// attribute it belongs to and each anonymous set (from { … }, * or
	// ~x in a rule) that holds it (policydb type_attr_map).
	typeKeys   [][]int32
	avtab      map[avKey]avEntry
	permissive []bool // per type
	rules      int    // access-vector rules, for Stats and tests
	src        string // the text given to Parse
}

// Source returns the policy text the policy was parsed from.
func (p *Policy) Source() string { return p.src }

// ident is a declared name.
type ident struct {
	attr bool
	idx  int32
}

// selfKey is the avtab target of rules written with "self".
const selfKey int32 = -1

// avKey is one avtab key: source key, target key (or selfKey), class.
type avKey struct {
	src, tgt int32
	class    class
}

// avEntry accumulates the rules of one avtab key.
type avEntry struct {
	allow, auditallow, dontaudit uint32
}

// avDecision is an access-vector decision (security/selinux/include/
// security.h:struct av_decision) for one (source, target, class).
type avDecision struct {
	allowed, auditallow, auditdeny uint32
	permissive                     bool // AVD_FLAGS_PERMISSIVE
}

// Types returns the declared type names in declaration order.
func (p *Policy) Types() []string { return append([]string(nil), p.types...) }

// Rules returns the number of access-vector rules (allow, auditallow,
// dontaudit, neverallow) in the policy text.
func (p *Policy) Rules() int { return p.rules }

// typeIndex returns the index of the named type, or -1.
func (p *Policy) typeIndex(name string) int32 {
	if id, ok := p.index[name]; ok && !id.attr {
		return id.idx
	}
	return -1
}

// compute is security/selinux/ss/services.c:context_struct_compute_av for
// the TE part: OR the avtab entries over every key of the source and
// target types, plus the self entries when they are one type. An unknown
// type (index -1) is granted nothing.
func (p *Policy) compute(s, t int32, c class) avDecision {
	d := avDecision{auditdeny: ^uint32(0)}
	if s < 0 || t < 0 {
		return d
	}
	d.permissive = p.permissive[s]
	add := func(e avEntry) {
		d.allowed |= e.allow
		d.auditallow |= e.auditallow
		d.auditdeny &^= e.dontaudit
	}
	for _, sk := range p.typeKeys[s] {
		for _, tk := range p.typeKeys[t] {
			if e, ok := p.avtab[avKey{sk, tk, c}]; ok {
				add(e)
			}
		}
		if s == t {
			if e, ok := p.avtab[avKey{sk, selfKey, c}]; ok {
				add(e)
			}
		}
	}
	return d
}
