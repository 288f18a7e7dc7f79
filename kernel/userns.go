package kernel

// IDExtent maps Count consecutive ids starting at Inside in a namespace to
// global ids starting at Outside (one line of /proc/<pid>/uid_map, with the
// outside range already resolved to kernel-global ids).
type IDExtent struct {
	Inside, Outside, Count uint32
}

// UserNS is a user namespace (include/linux/user_namespace.h:struct
// user_namespace): its parent, nesting level, owner (the creator's euid)
// and id maps.
type UserNS struct {
	// Name identifies the namespace in scenarios and explanations.
	Name string
	// Parent is nil only for the initial namespace.
	Parent *UserNS
	// Level is 0 for the initial namespace and Parent.Level+1 otherwise.
	Level int
	// Owner and Group are the creator's euid and egid: the owner holds every
	// capability in this namespace and its descendants when acting from
	// the parent namespace (security/commoncap.c:cap_capable).
	Owner KUID
	Group KGID
	// UIDMap and GIDMap list the mapped ranges. The initial namespace maps
	// everything.
	UIDMap, GIDMap []IDExtent
}

// NewInitUserNS returns the initial user namespace (init_user_ns), which
// maps every id to itself.
func NewInitUserNS() *UserNS {
	all := []IDExtent{{Inside: 0, Outside: 0, Count: ^uint32(0)}}
	return &UserNS{Name: "init", UIDMap: all, GIDMap: all}
}

// IsInit reports whether ns is the initial namespace.
func (ns *UserNS) IsInit() bool { return ns.Parent == nil }

// MapsUID reports whether the global uid k has a mapping in ns
// (kuid_has_mapping).
func (ns *UserNS) MapsUID(k KUID) bool { return mapsID(ns.UIDMap, uint32(k)) }

// MapsGID reports whether the global gid k has a mapping in ns
// (kgid_has_mapping).
func (ns *UserNS) MapsGID(k KGID) bool { return mapsID(ns.GIDMap, uint32(k)) }

// RootUID returns the global uid of uid 0 in ns and whether it is mapped
// (make_kuid(ns, 0)).
func (ns *UserNS) RootUID() (KUID, bool) {
	v, ok := mapDown(ns.UIDMap, 0)
	return KUID(v), ok
}

// RootGID returns the global gid of gid 0 in ns and whether it is mapped.
func (ns *UserNS) RootGID() (KGID, bool) {
	v, ok := mapDown(ns.GIDMap, 0)
	return KGID(v), ok
}

// IsAncestorOf reports whether ns is other or one of its ancestors.
func (ns *UserNS) IsAncestorOf(other *UserNS) bool {
	for n := other; n != nil; n = n.Parent {
		if n == ns {
			return true
		}
	}
	return false
}

func mapsID(m []IDExtent, k uint32) bool {
	for _, e := range m {
		if k >= e.Outside && uint64(k) < uint64(e.Outside)+uint64(e.Count) {
			return true
		}
	}
	return false
}

func mapDown(m []IDExtent, in uint32) (uint32, bool) {
	for _, e := range m {
		if in >= e.Inside && uint64(in) < uint64(e.Inside)+uint64(e.Count) {
			return e.Outside + (in - e.Inside), true
		}
	}
	return 0, false
}

// HasCapIn reports whether cred holds capability c in namespace ns, the
// capability module's own rule (security/commoncap.c:cap_capable): the
// cap must be in the effective set when cred's namespace is ns; the owner
// of a namespace created in cred's namespace holds every capability in it;
// a namespace at or above cred's level is never reachable.
func (cred *Cred) HasCapIn(ns *UserNS, c Cap) bool {
	for n := ns; n != nil; n = n.Parent {
		if n == cred.UserNS {
			return cred.CapEffective.Has(c)
		}
		if n.Level <= cred.UserNS.Level {
			return false
		}
		if n.Parent == cred.UserNS && n.Owner == cred.EUID {
			return true
		}
	}
	return false
}
