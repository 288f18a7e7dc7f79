package apparmor

import (
	"sync"

	"github.com/procgate/procgate/kernel"
)

// Ptrace permission bits. The tracee-side bits are the tracer-side ones
// shifted by PTRACE_PERM_SHIFT (security/apparmor/include/task.h).
const (
	permRead     uint8 = 1 << 0 // AA_PTRACE_READ ("read", MAY_READ)
	permTrace    uint8 = 1 << 1 // AA_PTRACE_TRACE ("trace", MAY_WRITE)
	permReadBy   uint8 = 1 << 2 // AA_MAY_BE_READ ("readby")
	permTracedBy uint8 = 1 << 3 // AA_MAY_BE_TRACED ("tracedby")
	permAll            = permRead | permTrace | permReadBy | permTracedBy

	ptracePermShift = 2
)

// maskName is security/apparmor/task.c:audit_ptrace_mask.
func maskName(m uint8) string {
	switch m {
	case permRead:
		return "read"
	case permTrace:
		return "trace"
	case permReadBy:
		return "readby"
	case permTracedBy:
		return "tracedby"
	}
	return ""
}

// Mode is a profile's mode.
type Mode uint8

// Profile modes (flags=(…)).
const (
	Enforce    Mode = iota // denials are enforced and logged
	Complain               // denials are logged as ALLOWED and not enforced
	Unconfined             // the profile does not confine (flags=(unconfined))
)

// String returns "enforce", "complain" or "unconfined".
func (m Mode) String() string {
	return [...]string{"enforce", "complain", "unconfined"}[m]
}

// perms is the permission set a profile grants one peer
// (security/apparmor/include/perms.h:struct aa_perms, ptrace bits only).
type perms struct {
	allow, deny, audit, quiet uint8
}

// ptraceRule is one ptrace rule.
type ptraceRule struct {
	perms       uint8
	deny, audit bool
	peer        *aare // nil: any peer
}

func (r *ptraceRule) apply(p *perms) {
	if r.deny {
		p.deny |= r.perms
		if !r.audit {
			p.quiet |= r.perms // deny rules quiet known rejects
		}
		return
	}
	p.allow |= r.perms
	if r.audit {
		p.audit |= r.perms
	}
}

// capRules are a profile's capability rules (struct aa_caps).
type capRules struct {
	allow, deny, audit, quiet kernel.CapSet
}

// Profile is one compiled profile. It is immutable after Parse except
// for its internal match cache, which is safe for concurrent use.
type Profile struct {
	// Name is the profile's name, which is also the label of its tasks.
	Name string
	// Mode is enforce, complain or unconfined.
	Mode Mode
	// AuditAll is flags=(audit): every decision is logged and deny rules
	// are not quiet (AUDIT_ALL).
	AuditAll bool

	rules []ptraceRule
	caps  capRules
	// base holds rules without a peer; exact the rules whose peer has no
	// special characters; globs the others.
	base  perms
	exact map[string]perms
	globs []ptraceRule

	mu    sync.RWMutex
	cache map[string]perms // peer label → perms from globs
}

// HasPtraceRules reports whether the profile has at least one ptrace
// rule.
func (p *Profile) HasPtraceRules() bool { return len(p.rules) > 0 }

// compile indexes the ptrace rules by peer.
func (p *Profile) compile() {
	p.exact = map[string]perms{}
	for i := range p.rules {
		r := &p.rules[i]
		switch {
		case r.peer == nil:
			r.apply(&p.base)
		case r.peer.re == nil:
			e := p.exact[r.peer.src]
			r.apply(&e)
			p.exact[r.peer.src] = e
		default:
			p.globs = append(p.globs, *r)
		}
	}
	p.cache = map[string]perms{}
}

// maxCache bounds the per-profile cache of glob matches.
const maxCache = 4096

// match returns what the profile grants peer
// (security/apparmor/policy.c:aa_profile_match_label for AA_CLASS_PTRACE).
func (p *Profile) match(peer string) perms {
	ps := p.base
	if e, ok := p.exact[peer]; ok {
		ps.allow |= e.allow
		ps.deny |= e.deny
		ps.audit |= e.audit
		ps.quiet |= e.quiet
	}
	if len(p.globs) == 0 {
		return ps
	}
	p.mu.RLock()
	g, ok := p.cache[peer]
	p.mu.RUnlock()
	if !ok {
		for i := range p.globs {
			if p.globs[i].peer.match(peer) {
				p.globs[i].apply(&g)
			}
		}
		p.mu.Lock()
		if len(p.cache) >= maxCache {
			clear(p.cache)
		}
		p.cache[peer] = g
		p.mu.Unlock()
	}
	ps.allow |= g.allow
	ps.deny |= g.deny
	ps.audit |= g.audit
	ps.quiet |= g.quiet
	return ps
}

// Policy is a set of loaded profiles.
type Policy struct {
	profiles map[string]*Profile
	order    []string
	src      string // the text given to Parse
}

// Source returns the profile text the policy was parsed from.
func (p *Policy) Source() string { return p.src }

// Profile returns the named profile, or nil.
func (p *Policy) Profile(name string) *Profile { return p.profiles[name] }

// Names returns the profile names in load order.
func (p *Policy) Names() []string { return append([]string(nil), p.order...) }
