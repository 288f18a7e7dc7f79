package gate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/live"
)

type pairKey struct{ caller, target taskKey }

// viewCache caches Views by the fingerprints of both processes. Any
// change of credentials, capabilities, relations, state, dump owner, user
// namespace or labels changes a fingerprint and so misses. Kernel
// settings (Yama scope, hidepid, the modules) are read at the first miss
// after the cache expires, and kept with the views.
//
// Its memory is bounded: entries are grouped by caller, so a caller's
// fingerprint is stored once, and dropped when the last connection of
// that caller closes (a later caller process never has the same
// fingerprint: it includes the pid and start time); the views themselves
// are interned, since most pairs get identical answers; and past max
// entries the cache is emptied.
type viewCache struct {
	mu      sync.RWMutex
	callers map[taskKey]*callerViews
	n       int // entries over all callers
	intern  map[string]*View
	born    time.Time
	ttl     time.Duration
	max     int
	hits    atomic.Uint64
	misses  atomic.Uint64
	evicted atomic.Uint64
	reads   atomic.Uint64 // model reads (live.ReadPIDs calls)
	// stamp, when set, numbers the versions of what the views were
	// computed under beyond the processes (procgate's BPF rule set: its
	// mirror's sequence number); the cache holds only views of the
	// current one.
	stamp   func() uint64
	stampAt uint64
	// kernel holds the kernel-wide facts the views are computed with
	// (modules, sysctls, procfs's mount options), read at the first miss
	// after each flush instead of at every one.
	kernel *live.KernelInfo
}

// callerViews are the cached views of one caller.
type callerViews struct {
	views map[taskKey]*View
	refs  int // open Callers with this fingerprint
}

// maxInterned bounds the distinct views kept for sharing.
const maxInterned = 512

func newViewCache(ttl time.Duration, max int) *viewCache {
	return &viewCache{callers: map[taskKey]*callerViews{}, intern: map[string]*View{}, born: time.Now(), ttl: ttl, max: max}
}

// now returns the current stamp (0 without one).
func (vc *viewCache) now() uint64 {
	if vc.stamp == nil {
		return 0
	}
	return vc.stamp()
}

func (vc *viewCache) get(k pairKey) *View {
	cur := vc.now()
	vc.mu.RLock()
	var v *View
	if cv := vc.callers[k.caller]; cv != nil {
		v = cv.views[k.target]
	}
	expired := vc.expiredLocked(cur)
	vc.mu.RUnlock()
	if expired {
		vc.flush()
		v = nil
	}
	if v != nil {
		vc.hits.Add(1)
	} else {
		vc.misses.Add(1)
	}
	return v
}

// expiredLocked reports whether the cache outlived its time to live or
// its stamp (cur). The caller holds mu, for reading or writing.
func (vc *viewCache) expiredLocked(cur uint64) bool {
	return time.Since(vc.born) > vc.ttl || cur != vc.stampAt
}

// kernelInfo returns the kernel-wide facts for the next model read,
// reading them with opts at the first call after a flush. A rule set
// of procgate's BPF LSM that could not be read is not kept: the next
// miss reads it again.
func (vc *viewCache) kernelInfo(opts live.Options) (*live.KernelInfo, error) {
	cur := vc.now()
	vc.mu.RLock()
	k, expired := vc.kernel, vc.expiredLocked(cur)
	vc.mu.RUnlock()
	if expired {
		vc.flush()
	} else if k != nil {
		return k, nil
	}
	ki, err := live.ReadKernel(opts)
	if err != nil {
		return nil, err
	}
	if ki.BPFUnreadable == "" {
		vc.mu.Lock()
		if vc.stampAt == cur {
			vc.kernel = &ki
		}
		vc.mu.Unlock()
	}
	return &ki, nil
}

// put caches v, computed under stamp (now, before the model read): a
// view of an older stamp is not kept.
func (vc *viewCache) put(k pairKey, v *View, stamp uint64) {
	sig := v.signature()
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if stamp != vc.stampAt {
		return
	}
	if vc.n >= vc.max {
		vc.clearLocked()
	}
	cv := vc.callers[k.caller]
	if cv == nil {
		return // the caller closed during the request: nobody to reuse it
	}
	if iv, ok := vc.intern[sig]; ok {
		v = iv
	} else if len(vc.intern) < maxInterned {
		vc.intern[sig] = v
	}
	if cv.views == nil {
		cv.views = map[taskKey]*View{}
	}
	if _, ok := cv.views[k.target]; !ok {
		vc.n++
	}
	cv.views[k.target] = v
}

// ref records an open Caller with fingerprint k; unref its close, which
// drops the caller's views when it was the last.
func (vc *viewCache) ref(k taskKey) {
	vc.mu.Lock()
	cv := vc.callers[k]
	if cv == nil {
		cv = &callerViews{}
		vc.callers[k] = cv
	}
	cv.refs++
	vc.mu.Unlock()
}

func (vc *viewCache) unref(k taskKey) {
	vc.mu.Lock()
	if cv := vc.callers[k]; cv != nil {
		if cv.refs--; cv.refs <= 0 {
			vc.n -= len(cv.views)
			vc.evicted.Add(uint64(len(cv.views)))
			delete(vc.callers, k)
		}
	}
	vc.mu.Unlock()
}

// clearLocked drops every view, keeping the reference counts.
func (vc *viewCache) clearLocked() {
	vc.evicted.Add(uint64(vc.n))
	for k, cv := range vc.callers {
		if cv.refs <= 0 {
			delete(vc.callers, k)
			continue
		}
		cv.views = nil
	}
	vc.n = 0
	clear(vc.intern)
	vc.kernel = nil
}

// flush drops every entry (expiry, policy reload, SIGHUP).
func (vc *viewCache) flush() {
	cur := vc.now()
	vc.mu.Lock()
	vc.clearLocked()
	vc.born = time.Now()
	vc.stampAt = cur
	vc.mu.Unlock()
}

func (vc *viewCache) size() int {
	vc.mu.RLock()
	defer vc.mu.RUnlock()
	return vc.n
}

// signature encodes everything a View answers, so that equal views can
// share one copy.
func (v *View) signature() string {
	b := make([]byte, 0, 64*len(v.Kernel))
	b = append(b, boolByte(v.Dumpable), boolByte(v.Descendant))
	for i := range v.Kernel {
		d := &v.Kernel[i]
		b = append(b, boolByte(d.Allowed), boolByte(d.Masked), byte(d.Errno), byte(d.Errno>>8))
		b = binary.AppendUvarint(b, uint64(len(d.Layer)))
		b = append(b, d.Layer...)
	}
	for i := range v.MAC {
		m := &v.MAC[i]
		b = append(b, boolByte(m.Denied))
		b = binary.AppendUvarint(b, uint64(len(m.Module)))
		b = append(b, m.Module...)
		b = binary.AppendUvarint(b, uint64(len(m.Reason)))
		b = append(b, m.Reason...)
	}
	return string(b)
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// errChanged marks a process whose credentials changed between the
// gate's read and the model's.
var errChanged = errors.New("process changed while it was read")

// buildViews reads the caller and the targets into the model (one
// live.ReadPIDs call, repeated without the targets that exit meanwhile)
// and computes a View per target. A target that exited gets an error
// wrapping ESRCH; one whose state changed between the two reads gets
// errChanged (wrapping EAGAIN). Callers hold pins on all of them.
func buildViews(opts live.Options, caller *procInfo, targets []*procInfo) ([]*View, []error, error) {
	views := make([]*View, len(targets))
	errs := make([]error, len(targets))
	pids := make([]int, 0, len(targets)+1)
	index := map[int]int{}
	pids = append(pids, caller.st.Pid)
	for i, t := range targets {
		if t.st.Pid == caller.st.Pid {
			index[t.st.Pid] = i
			continue
		}
		index[t.st.Pid] = i
		pids = append(pids, t.st.Pid)
	}
	var sys *live.System
	for {
		var err error
		sys, err = live.ReadPIDs(pids, opts)
		if err == nil {
			break
		}
		var pe *live.ProcessError
		if !errors.As(err, &pe) {
			return nil, nil, fmt.Errorf("gate: read the model: %w", err)
		}
		if pe.PID == caller.st.Pid {
			return nil, nil, fmt.Errorf("gate: caller: %w", pe)
		}
		i, ok := index[pe.PID]
		if !ok {
			return nil, nil, fmt.Errorf("gate: read the model: %w", err)
		}
		errs[i] = fmt.Errorf("gate: pid %d: %w", pe.PID, unix.ESRCH)
		pids = slices.DeleteFunc(pids, func(p int) bool { return p == pe.PID })
	}
	w := sys.World
	ct := w.TaskByPID(caller.st.Pid)
	if ct == nil || !sameCreds(ct, caller) {
		return nil, nil, fmt.Errorf("gate: caller pid %d: %w", caller.st.Pid, errChangedErr)
	}
	for i, t := range targets {
		if errs[i] != nil {
			continue
		}
		tt := w.TaskByPID(t.st.Pid)
		if tt == nil || !sameCreds(tt, t) {
			errs[i] = fmt.Errorf("gate: pid %d: %w", t.st.Pid, errChangedErr)
			continue
		}
		views[i] = ComputeView(sys.World, sys.Unmodelled, ct, tt)
	}
	return views, errs, nil
}

// buildViews is buildViews with the gate's options and the kernel-wide
// facts its view cache keeps.
func (g *Gate) buildViews(caller *procInfo, targets []*procInfo) ([]*View, []error, error) {
	opts := g.cfg.Live
	if opts.Kernel == nil {
		k, err := g.cache.kernelInfo(opts)
		if err != nil {
			return nil, nil, fmt.Errorf("gate: read the model: %w", err)
		}
		opts.Kernel = k
	}
	return buildViews(opts, caller, targets)
}

// errChangedErr wraps errChanged with EAGAIN, the errno a caller sees.
var errChangedErr = fmt.Errorf("%w (%w)", errChanged, unix.EAGAIN)

// sameCreds reports whether the model's task has the credentials the
// gate read under its pin.
func sameCreds(t *kernel.Task, pi *procInfo) bool {
	c := &t.Cred
	st := &pi.st
	if [4]uint32{uint32(c.UID), uint32(c.EUID), uint32(c.SUID), uint32(c.FSUID)} != st.UIDs ||
		[4]uint32{uint32(c.GID), uint32(c.EGID), uint32(c.SGID), uint32(c.FSGID)} != st.GIDs {
		return false
	}
	if uint64(c.CapEffective) != st.CapEff&uint64(kernel.CapSetAll) || uint64(c.CapPermitted) != st.CapPrm&uint64(kernel.CapSetAll) {
		return false
	}
	if len(c.Groups) != len(st.Groups) {
		return false
	}
	for i, g := range c.Groups {
		if uint32(g) != st.Groups[i] {
			return false
		}
	}
	return true
}
