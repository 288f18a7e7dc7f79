package selinux

import (
	"strconv"
	"sync/atomic"

	"github.com/procgate/procgate/kernel"
)

// Module is SELinux with a loaded policy and an enforcing flag. It is
// safe for concurrent use; the policy and the flag may be changed while
// decisions run.
type Module struct {
	policy    atomic.Pointer[Policy]
	seqno     atomic.Uint32 // policy sequence number, bumped on every load
	enforcing atomic.Bool
	sids      sidTable
	avc       avcCache
}

var _ kernel.LSM = (*Module)(nil)

// New returns SELinux with the given policy (nil means an empty policy,
// which grants nothing) in enforcing or permissive mode.
func New(p *Policy, enforcing bool) *Module {
	m := &Module{}
	m.enforcing.Store(enforcing)
	m.SetPolicy(p)
	return m
}

// Name returns "selinux".
func (*Module) Name() string { return "selinux" }

// SetPolicy loads a policy and invalidates the cache
// (security/selinux/avc.c:avc_ss_reset).
func (m *Module) SetPolicy(p *Policy) {
	if p == nil {
		p = &Policy{index: map[string]ident{}, avtab: map[avKey]avEntry{}}
	}
	// Publish the policy before the sequence number: a decision that reads
	// the new number is sure to compute with the new policy.
	m.policy.Store(p)
	m.seqno.Add(1)
}

// Policy returns the loaded policy.
func (m *Module) Policy() *Policy { return m.policy.Load() }

// SetEnforcing switches between enforcing (true) and permissive mode,
// as writing /sys/fs/selinux/enforce does.
func (m *Module) SetEnforcing(on bool) { m.enforcing.Store(on) }

// Enforcing reports whether denials are enforced.
func (m *Module) Enforcing() bool { return m.enforcing.Load() }

// Stats returns the AVC counters.
func (m *Module) Stats() CacheStats { return m.avc.stats() }

// Allowed reports whether the policy grants perm in class from type src
// to type tgt, ignoring permissive mode: the question sesearch answers.
// Unknown names are never allowed.
func (m *Module) Allowed(src, tgt, class, perm string) bool {
	p := m.policy.Load()
	c, ok := lookupClass(class)
	if !ok {
		return false
	}
	bit, ok := c.perm(perm)
	if !ok {
		return false
	}
	return p.compute(p.typeIndex(src), p.typeIndex(tgt), c).allowed&bit != 0
}

// decision returns the AV decision for a SID pair
// (security/selinux/avc.c:avc_has_perm_noaudit's lookup or compute).
func (m *Module) decision(ssid, tsid sid, c class) avDecision {
	seq := m.seqno.Load()
	if d, ok := m.avc.lookup(ssid, tsid, c, seq); ok {
		return d
	}
	p := m.policy.Load()
	d := p.compute(p.typeIndex(m.sids.info(ssid).typ), p.typeIndex(m.sids.info(tsid).typ), c)
	m.avc.insert(ssid, tsid, c, seq, d)
	return d
}

// check is security/selinux/avc.c:avc_has_perm: look up or compute the
// decision, apply enforcing and permissive, and audit. subj and obj give
// the SIDs; current is the task the record names (pid=, comm=); capNum is
// the capability for capability classes (-1 otherwise); audit false is
// CAP_OPT_NOAUDIT.
func (m *Module) check(e kernel.Env, subj, obj, current *kernel.Task, c class, perm uint32, capNum int, audit bool, what string) kernel.Errno {
	ssid, tsid := m.sids.lookup(subj.SELinux), m.sids.lookup(obj.SELinux)
	d := m.decision(ssid, tsid, c)
	denied := perm &^ d.allowed
	rc := kernel.OK
	if denied != 0 && m.enforcing.Load() && !d.permissive {
		rc = kernel.EACCES // avc_denied
	}
	if e.T.On() {
		m.explain(e.T, ssid, tsid, c, perm, d, rc, what)
		if audit {
			if rec, ok := m.record(ssid, tsid, c, perm, d, rc, current, capNum); ok {
				e.T.AuditRecord(rec)
			}
		}
	}
	return rc
}

// PtraceAccessCheck is security/selinux/hooks.c:selinux_ptrace_access_check:
// file { read } on the target's SID for READ modes, process { ptrace }
// otherwise. NOAUDIT is not honoured (policies use dontaudit).
func (m *Module) PtraceAccessCheck(e kernel.Env, tracer, tracee *kernel.Task, mode kernel.Mode) kernel.Errno {
	if mode.IsRead() {
		return m.check(e, tracer, tracee, tracer, classFile, fileRead, -1, true, "READ mode")
	}
	return m.check(e, tracer, tracee, tracer, classProcess, processPtrace, -1, true, "ATTACH mode")
}

// ProcInodePermission is security/selinux/hooks.c:selinux_inode_permission
// (file_mask_to_av), selinux_inode_readlink and selinux_inode_getattr on
// an inode of target's /proc/<pid>/ directory, which carries the task's
// SID (selinux_task_to_inode): the caller's SID on the target's, in class
// file, dir or lnk_file. The open permission is not asked: the kernel
// asks it only when the policy declares the open_perms capability, which
// the model's policy language cannot.
func (m *Module) ProcInodePermission(e kernel.Env, caller, target *kernel.Task, ic kernel.InodeClass, access kernel.InodeAccess, name string) kernel.Errno {
	cl := classFile
	switch ic {
	case kernel.InodeDir:
		cl = classDir
	case kernel.InodeSymlink:
		cl = classLnkFile
	}
	var perm uint32
	switch access {
	case kernel.InodeRead:
		perm = fileRead
	case kernel.InodeWrite:
		perm = fileWrite
	case kernel.InodeGetattr:
		perm = fileGetattr
	case kernel.InodeSearch:
		perm = dirSearch
	}
	what := ""
	if e.T.On() {
		what = "/proc/" + strconv.Itoa(target.PID) + "/" + name + " (" + access.String() + ")"
	}
	return m.check(e, caller, target, caller, cl, perm, -1, true, what)
}

// PtraceTraceme is security/selinux/hooks.c:selinux_ptrace_traceme: the
// parent needs process { ptrace } on the child (current).
func (m *Module) PtraceTraceme(e kernel.Env, parent, child *kernel.Task) kernel.Errno {
	return m.check(e, parent, child, child, classProcess, processPtrace, -1, true, "PTRACE_TRACEME")
}

// Capable is security/selinux/hooks.c:selinux_capable → cred_has_capability:
// the task's SID on itself in class capability (capabilities 0–31) or
// capability2 (32–63), or cap_userns / cap2_userns outside the initial
// user namespace. noaudit (CAP_OPT_NOAUDIT) suppresses the record only.
func (m *Module) Capable(e kernel.Env, t *kernel.Task, ns *kernel.UserNS, c kernel.Cap, noaudit bool) kernel.Errno {
	init := ns == nil || ns.IsInit()
	var cl class
	switch {
	case c < 32 && init:
		cl = classCapability
	case c < 32:
		cl = classCapUserns
	case init:
		cl = classCapability2
	default:
		cl = classCap2Userns
	}
	return m.check(e, t, t, t, cl, 1<<(uint(c)&31), int(c), !noaudit, "CAP_"+upper(c.String()))
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
