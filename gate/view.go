package gate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/live"
)

// kernelAnswer is the model's answer for one item.
type kernelAnswer struct {
	allowed, masked bool
	errno           kernel.Errno
	layer           kernel.Layer
}

// macAnswer is the MAC layers' answer for one item, for the caller.
type macAnswer struct {
	denied bool
	reason string
}

// kview is the model's view of one (caller, target) pair: what the kernel
// would let the caller read directly, what its MAC layers allow, and the
// relations the policy needs from the process tree.
type kview struct {
	dumpable, descendant bool
	direct               []kernelAnswer
	mac                  []macAnswer
}

type pairKey struct{ caller, target taskKey }

// viewCache caches kviews by the fingerprints of both processes. Any
// change of credentials, capabilities, relations, state, dump owner, user
// namespace or labels changes a fingerprint and so misses. Kernel
// settings (Yama scope, hidepid) are re-read when the cache expires.
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
	intern  map[string]*kview
	born    time.Time
	ttl     time.Duration
	max     int
	hits    atomic.Uint64
	misses  atomic.Uint64
	evicted atomic.Uint64
	reads   atomic.Uint64 // model reads (live.ReadPIDs calls)
}

// callerViews are the cached views of one caller.
type callerViews struct {
	views map[taskKey]*kview
	refs  int // open Callers with this fingerprint
}

// maxInterned bounds the distinct views kept for sharing.
const maxInterned = 512

func newViewCache(ttl time.Duration, max int) *viewCache {
	return &viewCache{callers: map[taskKey]*callerViews{}, intern: map[string]*kview{}, born: time.Now(), ttl: ttl, max: max}
}

func (vc *viewCache) get(k pairKey) *kview {
	vc.mu.RLock()
	var v *kview
	if cv := vc.callers[k.caller]; cv != nil {
		v = cv.views[k.target]
	}
	expired := time.Since(vc.born) > vc.ttl
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

func (vc *viewCache) put(k pairKey, v *kview) {
	sig := v.signature()
	vc.mu.Lock()
	defer vc.mu.Unlock()
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
		cv.views = map[taskKey]*kview{}
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
}

// flush drops every entry (expiry, policy reload, SIGHUP).
func (vc *viewCache) flush() {
	vc.mu.Lock()
	vc.clearLocked()
	vc.born = time.Now()
	vc.mu.Unlock()
}

func (vc *viewCache) size() int {
	vc.mu.RLock()
	defer vc.mu.RUnlock()
	return vc.n
}

// signature encodes everything a kview answers, so that equal views can
// share one copy.
func (v *kview) signature() string {
	b := make([]byte, 0, 64*len(v.direct))
	b = append(b, boolByte(v.dumpable), boolByte(v.descendant))
	for i := range v.direct {
		d := &v.direct[i]
		b = append(b, boolByte(d.allowed), boolByte(d.masked), byte(d.errno), byte(d.errno>>8))
		b = binary.AppendUvarint(b, uint64(len(d.layer)))
		b = append(b, d.layer...)
	}
	for i := range v.mac {
		m := &v.mac[i]
		b = append(b, boolByte(m.denied))
		b = binary.AppendUvarint(b, uint64(len(m.reason)))
		b = append(b, m.reason...)
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
// and computes a kview per target. A target that exited gets an error
// wrapping ESRCH; one whose state changed between the two reads gets
// errChanged (wrapping EAGAIN). Callers hold pins on all of them.
func buildViews(opts live.Options, caller *procInfo, targets []*procInfo) ([]*kview, []error, error) {
	views := make([]*kview, len(targets))
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
		views[i] = computeView(sys, ct, tt)
	}
	return views, errs, nil
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

// computeView evaluates every item for caller ct and target tt.
func computeView(sys *live.System, ct, tt *kernel.Task) *kview {
	w := sys.World
	v := &kview{
		dumpable:   tt.MM != nil && tt.MM.Dumpable == kernel.SuidDumpUser,
		descendant: ct.TGID != tt.TGID && kernel.IsDescendant(ct, tt),
		direct:     make([]kernelAnswer, numItems),
		mac:        make([]macAnswer, numItems),
	}
	for i := range numItems {
		c := &checks[i]
		var d kernel.Decision
		var mode kernel.Mode
		switch {
		case c.entry != nil:
			d = w.CheckEntry(ct, tt, c.entry)
			if d.Allowed && c.list != nil {
				if d2 := w.CheckEntry(ct, tt, c.list); !d2.Allowed {
					d = d2
				}
			}
			mode = c.entry.Mode
		case c.syscall != nil:
			d = w.CheckSyscall(ct, tt, c.syscall)
			mode = c.syscall.Mode
		default:
			d = kernel.Decision{Errno: kernel.EACCES, Layer: kernel.LayerEntry}
		}
		v.direct[i] = kernelAnswer{allowed: d.Allowed, masked: d.Masked, errno: d.Errno, layer: d.Layer}
		v.mac[i] = macCheck(sys, ct, tt, mode)
	}
	return v
}

// macCheck asks the caller's mandatory access control layers whether
// they would let it access the target in mode. Modelled modules
// (Landlock, Yama) answer through their ptrace hooks; the capability
// module is DAC-like and is what the broker replaces, so it is skipped.
// Modules the model cannot load from a live system (SELinux, AppArmor,
// Smack) fail closed unless the caller is unconfined by them.
func macCheck(sys *live.System, ct, tt *kernel.Task, mode kernel.Mode) macAnswer {
	if mode == 0 {
		return macAnswer{} // no ptrace hook runs for this entry
	}
	if kernel.SameThreadGroup(ct, tt) {
		return macAnswer{}
	}
	env := kernel.Env{W: sys.World}
	for _, m := range sys.World.LSMs {
		if m.Name() == "capability" {
			continue
		}
		if e := m.PtraceAccessCheck(env, ct, tt, mode); e != kernel.OK {
			return macAnswer{denied: true, reason: m.Name() + " would deny the caller " + mode.String() + " access (" + e.String() + ")"}
		}
	}
	for _, m := range sys.Unmodelled {
		switch m {
		case "apparmor":
			if l := ct.AppArmor; l != "" && l != "unconfined" {
				return macAnswer{denied: true, reason: "apparmor: caller is confined by " + l + ", whose ptrace rules are not modelled"}
			}
		case "selinux":
			if !selinuxUnconfined(ct.SELinux) {
				return macAnswer{denied: true, reason: "selinux: the caller's domain " + ct.SELinux + " is not modelled"}
			}
		case "smack":
			if ct.Smack != "" && ct.Smack != "_" && ct.Smack != tt.Smack {
				return macAnswer{denied: true, reason: "smack: caller label " + ct.Smack + " is not modelled"}
			}
		}
	}
	return macAnswer{}
}

// selinuxUnconfined reports whether an SELinux context is one of the
// unconfined domains, which every ptrace-read rule allows.
func selinuxUnconfined(ctx string) bool {
	for _, d := range []string{":unconfined_t:", ":kernel_t:", ":initrc_t:"} {
		if strings.Contains(ctx+":", d) {
			return true
		}
	}
	return false
}
