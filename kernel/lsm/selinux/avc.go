package selinux

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// The cache has avcSlots sets of avcWays entries. The kernel's AVC has
// 512 hash slots with chains and reclaims above 512 nodes
// (security/selinux/avc.c); a set-associative table bounds memory the
// same way without allocating.
const (
	avcSlots = 512
	avcWays  = 4
)

// avcEntry is one cached decision, stored as atomic words so that
// readers need no lock (the race detector checks every access):
//
//	key   ssid<<32 | tsid (0 when empty)
//	meta  seqno<<16 | permissive<<8 | class
//	av    allowed<<32 | auditallow
//	deny  auditdeny
type avcEntry struct {
	key, meta, av, deny atomic.Uint64
}

// avcSet is one hash slot. seq is a sequence lock: odd while a writer
// updates the set; readers retry when it changed under them.
type avcSet struct {
	seq  atomic.Uint32
	next uint32 // round-robin victim, guarded by avcCache.mu
	ways [avcWays]avcEntry
}

// avcCache is the access vector cache.
type avcCache struct {
	mu           sync.Mutex // serialises writers
	sets         [avcSlots]avcSet
	hits, misses atomic.Uint64
}

// CacheStats are the AVC counters, named as in
// /sys/fs/selinux/avc/cache_stats.
type CacheStats struct {
	Lookups, Hits, Misses uint64
}

// avcHash is security/selinux/avc.c:avc_hash.
func avcHash(ssid, tsid sid, c class) uint32 {
	return (uint32(ssid) ^ uint32(tsid)<<2 ^ uint32(c)<<4) & (avcSlots - 1)
}

// lookup returns the cached decision for the triple under policy seqno.
func (a *avcCache) lookup(ssid, tsid sid, c class, seqno uint32) (avDecision, bool) {
	set := &a.sets[avcHash(ssid, tsid, c)]
	key := uint64(ssid)<<32 | uint64(tsid)
	for {
		s1 := set.seq.Load()
		if s1&1 != 0 {
			runtime.Gosched()
			continue
		}
		var d avDecision
		found := false
		for i := range set.ways {
			e := &set.ways[i]
			if e.key.Load() != key {
				continue
			}
			m := e.meta.Load()
			if class(m&0xff) != c || uint32(m>>16) != seqno {
				continue
			}
			av := e.av.Load()
			d = avDecision{allowed: uint32(av >> 32), auditallow: uint32(av), auditdeny: uint32(e.deny.Load()), permissive: m&0x100 != 0}
			found = true
			break
		}
		if set.seq.Load() == s1 {
			if found {
				a.hits.Add(1)
			} else {
				a.misses.Add(1)
			}
			return d, found
		}
	}
}

// insert stores a decision computed under policy seqno
// (security/selinux/avc.c:avc_insert).
func (a *avcCache) insert(ssid, tsid sid, c class, seqno uint32, d avDecision) {
	set := &a.sets[avcHash(ssid, tsid, c)]
	key := uint64(ssid)<<32 | uint64(tsid)
	a.mu.Lock()
	defer a.mu.Unlock()
	victim := -1
	for i := range set.ways {
		e := &set.ways[i]
		m := e.meta.Load()
		if e.key.Load() == key && class(m&0xff) == c {
			victim = i // replace a stale entry for the same triple
			break
		}
		if victim < 0 && (e.key.Load() == 0 || uint32(m>>16) != seqno) {
			victim = i
		}
	}
	if victim < 0 {
		victim = int(set.next % avcWays)
		set.next++
	}
	var perm uint64
	if d.permissive {
		perm = 0x100
	}
	e := &set.ways[victim]
	set.seq.Add(1)
	e.key.Store(key)
	e.meta.Store(uint64(seqno)<<16 | perm | uint64(c))
	e.av.Store(uint64(d.allowed)<<32 | uint64(d.auditallow))
	e.deny.Store(uint64(d.auditdeny))
	set.seq.Add(1)
}

// stats returns the counters.
func (a *avcCache) stats() CacheStats {
	h, m := a.hits.Load(), a.misses.Load()
	return CacheStats{Lookups: h + m, Hits: h, Misses: m}
}
