package selinux

import (
	"strings"
	"sync"
	"sync/atomic"
)

// UnlabeledContext is the context an empty task label stands for: the
// kernel's unlabeled initial SID (SECINITSID_UNLABELED) as refpolicy
// names it.
const UnlabeledContext = "system_u:object_r:unlabeled_t:s0"

// sid is a security identifier: an interned context string. 0 is never
// used, so that an empty cache slot is all zeroes.
type sid uint32

// sidInfo is what a SID stands for.
type sidInfo struct {
	context string // as printed in AVC records
	typ     string // the type field
}

// sidTable interns context strings. Lookups read an immutable snapshot
// through an atomic pointer and neither lock nor allocate; a new context
// copies the snapshot under mu (contexts are few: one per distinct task
// label).
type sidTable struct {
	snap atomic.Pointer[sidSnapshot]
	mu   sync.Mutex
}

type sidSnapshot struct {
	byLabel map[string]sid
	info    []sidInfo // info[sid-1]
}

// lookup returns the SID of a task label, interning it if new.
func (t *sidTable) lookup(label string) sid {
	if s := t.snap.Load(); s != nil {
		if id, ok := s.byLabel[label]; ok {
			return id
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.snap.Load()
	if old != nil {
		if id, ok := old.byLabel[label]; ok {
			return id
		}
	}
	n := &sidSnapshot{byLabel: map[string]sid{}}
	if old != nil {
		for k, v := range old.byLabel {
			n.byLabel[k] = v
		}
		n.info = append(n.info, old.info...)
	}
	n.info = append(n.info, contextInfo(label))
	id := sid(len(n.info))
	n.byLabel[label] = id
	t.snap.Store(n)
	return id
}

// info returns what a SID stands for.
func (t *sidTable) info(id sid) sidInfo { return t.snap.Load().info[id-1] }

// contextInfo splits a label: user:role:type[:level]; "" is the
// unlabeled context and a label without ':' is a bare type.
func contextInfo(label string) sidInfo {
	if label == "" {
		label = UnlabeledContext
	}
	if !strings.Contains(label, ":") {
		return sidInfo{label, label}
	}
	f := strings.SplitN(label, ":", 4)
	if len(f) < 3 {
		return sidInfo{label, ""}
	}
	return sidInfo{label, f[2]}
}
