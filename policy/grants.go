package policy

// SinglesOut reports whether an allow rule of the policy names s by a
// subject class: a rule whose subject side is a class (or attribute)
// that s belongs to, and no class it excludes — not `*`, nor a class
// without selectors: those name everyone. These are the callers the
// policy grants something to on purpose (the default policy's group
// procgate); the daemon keeps part of its capacity for them and for
// root, so that callers the policy does not single out cannot crowd
// them out.
func (p *Policy) SinglesOut(s *Subject) bool {
	v := s.view()
	b := newBitset(len(p.subj.classes))
	for i, c := range p.subj.classes {
		if len(c.clauses) > 0 && c.match(&v) {
			b.set(i)
		}
	}
	for _, r := range p.rules {
		if r.src.Effect != Allow || r.sAny {
			continue
		}
		if r.sInc.intersects(b) && !r.sExc.intersects(b) {
			return true
		}
	}
	return false
}

// GrantsAttach reports whether an allow rule of the policy grants an
// attach-class item. The daemon's reader may then read memory
// (process_vm_readv, for the mem item); without one its seccomp filter
// refuses that system call.
func (p *Policy) GrantsAttach() bool {
	for _, r := range p.rules {
		if r.src.Effect == Allow && r.src.Items&AttachItems != 0 {
			return true
		}
	}
	return false
}
