package oracle

import (
	"errors"
	"fmt"
	"slices"
)

// Capability numbers (include/uapi/linux/capability.h) used by the tests and
// case generators. Use [CapMask] to build a mask from them.
const (
	CapChown          = 0
	CapDacOverride    = 1
	CapDacReadSearch  = 2
	CapFowner         = 3
	CapKill           = 5
	CapSetgid         = 6
	CapSetuid         = 7
	CapNetRaw         = 13
	CapSysPtrace      = 19
	CapSysAdmin       = 21
	CapSysNice        = 23
	CapPerfmon        = 38
	CapCheckpointRest = 40
)

// CapMask returns the capability mask with the given capability numbers set.
func CapMask(caps ...int) uint64 {
	var m uint64
	for _, c := range caps {
		m |= 1 << uint(c)
	}
	return m
}

// NSKind says in which user namespace a process runs.
type NSKind string

// User-namespace placements.
const (
	// NSNone places the process in the initial user namespace.
	NSNone NSKind = "none"
	// NSRoot places the process in a new user namespace created by root
	// (owner kuid 0). Ids 0..65535 inside map to Base..Base+65535 outside.
	NSRoot NSKind = "root"
	// NSOwned places the process in a new user namespace created by (and
	// so owned by) Owner: a helper re-executes as Owner/OwnerGID and clones
	// the process with CLONE_NEWUSER. Only id 0 is mapped inside (to Owner
	// and OwnerGID), and setgroups is denied, so every in-namespace id of
	// the process must be 0 and Groups must be empty.
	NSOwned NSKind = "owned"
)

// nsMapSize is the number of ids mapped into an [NSRoot] namespace.
const nsMapSize = 65536

// UserNS is the user-namespace placement of a process.
type UserNS struct {
	// Kind is the placement; the empty string means NSNone.
	Kind NSKind `json:"kind,omitempty"`
	// Base is the first outside id of the map of an NSRoot namespace.
	Base uint32 `json:"base,omitempty"`
	// Owner and OwnerGID create an NSOwned namespace.
	Owner    uint32 `json:"owner,omitempty"`
	OwnerGID uint32 `json:"owner_gid,omitempty"`
}

func (n UserNS) kind() NSKind {
	if n.Kind == "" {
		return NSNone
	}
	return n.Kind
}

// kid maps an in-namespace uid (or gid) to the id seen from the initial
// namespace.
func (n UserNS) kid(id uint32, gid bool) uint32 {
	switch n.kind() {
	case NSRoot:
		return n.Base + id
	case NSOwned:
		if gid {
			return n.OwnerGID
		}
		return n.Owner
	}
	return id
}

// Creds are the credentials a spawned process should hold. Ids are the ones
// inside the process's user namespace (see [UserNS]). The zero value is
// root with no capabilities and not dumpable; start from [User] or [Root].
type Creds struct {
	RUID  uint32 `json:"ruid"`
	EUID  uint32 `json:"euid"`
	SUID  uint32 `json:"suid"`
	FSUID uint32 `json:"fsuid"`
	RGID  uint32 `json:"rgid"`
	EGID  uint32 `json:"egid"`
	SGID  uint32 `json:"sgid"`
	FSGID uint32 `json:"fsgid"`
	// Groups are the supplementary groups.
	Groups []uint32 `json:"groups,omitempty"`
	// CapEff and CapPrm are the effective and permitted capability masks
	// (bit n = capability n); CapEff must be a subset of CapPrm.
	CapEff uint64 `json:"cap_eff"`
	CapPrm uint64 `json:"cap_prm"`
	// Dumpable is the value for PR_SET_DUMPABLE: 0 or 1.
	Dumpable int `json:"dumpable"`
	// NoNewPrivs sets PR_SET_NO_NEW_PRIVS.
	NoNewPrivs bool `json:"no_new_privs,omitempty"`
	// PtracerAny sets PR_SET_PTRACER_ANY (Yama only; the prctl fails with
	// EINVAL, and the case is refused, when Yama is not active).
	PtracerAny bool `json:"ptracer_any,omitempty"`
	// UserNS is the user-namespace placement.
	UserNS UserNS `json:"userns"`
	// AppArmor is the AppArmor profile the process runs under; empty
	// means unconfined. The profile must be loaded. The process enters it
	// first, by an exec transition (attr/apparmor/exec, then re-exec), so
	// that every thread is confined, and then applies the other
	// credentials under it: the profile must grant "capability setuid,
	// setgid," (and file access). The case is refused when
	// /proc/PID/attr/apparmor/current does not name the profile.
	AppArmor string `json:"apparmor,omitempty"`
	// SELinux is the SELinux context the process runs in, a full context
	// such as "system_u:system_r:pg_a_t"; empty leaves the process in its
	// parent's domain. The process enters it first, like AppArmor, by an
	// exec transition (attr/exec, then re-exec: a multi-threaded process
	// cannot setcon), so the policy must allow the transition and then
	// "capability setuid setgid" and file access in the domain. The case
	// is refused when /proc/PID/attr/current shows another context, and
	// where SELinux is not active.
	SELinux string `json:"selinux,omitempty"`
}

// User returns dumpable credentials with every uid set to uid, every gid
// set to gid, no supplementary groups and no capabilities.
func User(uid, gid uint32) Creds {
	return Creds{
		RUID: uid, EUID: uid, SUID: uid, FSUID: uid,
		RGID: gid, EGID: gid, SGID: gid, FSGID: gid,
		Dumpable: 1,
	}
}

// Root returns dumpable uid 0 credentials with the given capability mask
// both effective and permitted (use [FullCaps] for all capabilities).
func Root(caps uint64) Creds {
	c := User(0, 0)
	c.CapEff, c.CapPrm = caps, caps
	return c
}

// WithCaps returns c with the given effective and permitted masks.
func (c Creds) WithCaps(eff, prm uint64) Creds {
	c.CapEff, c.CapPrm = eff, prm
	return c
}

// InNS returns c placed in the given user namespace.
func (c Creds) InNS(ns UserNS) Creds {
	c.UserNS = ns
	return c
}

// Validate reports whether the credentials can be applied.
func (c Creds) Validate() error {
	if c.CapEff&^c.CapPrm != 0 {
		return fmt.Errorf("effective caps %#x not a subset of permitted %#x", c.CapEff, c.CapPrm)
	}
	if full := FullCaps(); c.CapPrm&^full != 0 {
		return fmt.Errorf("permitted caps %#x exceed the kernel's %#x", c.CapPrm, full)
	}
	if c.Dumpable != 0 && c.Dumpable != 1 {
		return fmt.Errorf("dumpable %d: want 0 or 1", c.Dumpable)
	}
	ids := []uint32{c.RUID, c.EUID, c.SUID, c.FSUID, c.RGID, c.EGID, c.SGID, c.FSGID}
	ids = append(ids, c.Groups...)
	switch c.UserNS.kind() {
	case NSNone:
		for _, id := range ids {
			if id == 0xffffffff {
				return errors.New("id -1 is not a valid id")
			}
		}
	case NSRoot:
		for _, id := range ids {
			if id >= nsMapSize {
				return fmt.Errorf("id %d not mapped in a root-made namespace (0..%d)", id, nsMapSize-1)
			}
		}
		if uint64(c.UserNS.Base)+nsMapSize > 0xffffffff {
			return fmt.Errorf("namespace base %d too large", c.UserNS.Base)
		}
	case NSOwned:
		if len(c.Groups) != 0 {
			return errors.New("an owned namespace denies setgroups: groups must be empty")
		}
		for _, id := range ids {
			if id != 0 {
				return fmt.Errorf("only id 0 is mapped in an owned namespace, got %d", id)
			}
		}
	default:
		return fmt.Errorf("unknown user namespace kind %q", c.UserNS.Kind)
	}
	if err := validProfileName(c.AppArmor); err != nil {
		return err
	}
	if err := validSELinuxContext(c.SELinux); err != nil {
		return err
	}
	if c.AppArmor != "" && c.SELinux != "" {
		return errors.New("a process cannot ask for both an AppArmor profile and an SELinux context")
	}
	return nil
}

// Landlock is the Landlock layout of a case. A Landlock domain here uses a
// ruleset that handles only LANDLOCK_ACCESS_FS_MAKE_CHAR, so that only its
// ptrace scoping (security/landlock/task.c) affects the probes.
type Landlock string

// Landlock layouts.
const (
	LandlockNone          Landlock = "none"           // nobody restricted
	LandlockProberOnly    Landlock = "prober-only"    // the prober restricts itself
	LandlockTargetOnly    Landlock = "target-only"    // the target restricts itself
	LandlockShared        Landlock = "shared"         // both in one domain
	LandlockNested        Landlock = "nested"         // target nested under the prober's domain
	LandlockNestedReverse Landlock = "nested-reverse" // prober nested under the target's domain
	LandlockSibling       Landlock = "sibling"        // two unrelated domains
)

func (l Landlock) norm() Landlock {
	if l == "" {
		return LandlockNone
	}
	return l
}

// layout reports whether the case's processes are spawned from one
// Landlock-restricted thread of the orchestrator (launcher), and whether the
// target and the prober each restrict themselves again.
func (l Landlock) layout() (launcher, targetOwn, proberOwn bool, err error) {
	switch l.norm() {
	case LandlockNone:
	case LandlockProberOnly:
		proberOwn = true
	case LandlockTargetOnly:
		targetOwn = true
	case LandlockSibling:
		targetOwn, proberOwn = true, true
	case LandlockShared:
		launcher = true
	case LandlockNested:
		launcher, targetOwn = true, true
	case LandlockNestedReverse:
		launcher, proberOwn = true, true
	default:
		err = fmt.Errorf("unknown landlock layout %q", l)
	}
	return
}

// Relation is how the prober and the target are related.
type Relation string

// Relations.
const (
	// RelSibling: both are children of the orchestrator.
	RelSibling Relation = "sibling"
	// RelParent: the prober spawns the target (before applying its own
	// credentials), so the prober is the target's parent (Yama).
	RelParent Relation = "prober-is-parent"
	// RelSelf: the prober probes its own process (/proc/<own pid>); the
	// case's Target is ignored.
	RelSelf Relation = "self"
	// RelThread: the prober probes another thread of its own process
	// (/proc/<tgid>/task/<tid>); the case's Target is ignored.
	RelThread Relation = "same-thread-group"
	// RelPtracerAny: siblings, and the target calls PR_SET_PTRACER_ANY.
	RelPtracerAny Relation = "ptracer-any"
)

func (r Relation) norm() Relation {
	if r == "" {
		return RelSibling
	}
	return r
}

// Probe names an operation the prober performs against the target.
type Probe string

// Probes. Each comment names the kernel check it exercises.
const (
	ProbeMaps        Probe = "maps"             // open+read; fs/proc/task_mmu.c via proc_mem_open: mm_access READ_FSCREDS
	ProbeEnviron     Probe = "environ"          // open+read (0400): DAC, then proc_mem_open READ_FSCREDS
	ProbeMem         Probe = "mem"              // open O_RDONLY (0600): DAC, then proc_mem_open ATTACH_FSCREDS
	ProbeIO          Probe = "io"               // open+read (0400): DAC, then do_io_accounting READ_FSCREDS
	ProbeSyscall     Probe = "syscall"          // open+read (0400): DAC, then lock_trace ATTACH_FSCREDS (EPERM)
	ProbeStat        Probe = "stat"             // read; do_task_stat READ_FSCREDS|NOAUDIT masks fields
	ProbeAuxv        Probe = "auxv"             // open+read (0400): DAC, then proc_mem_open READ_FSCREDS
	ProbeExe         Probe = "exe"              // readlink; proc_exe_link via proc_fd_access_allowed READ_FSCREDS
	ProbeCwd         Probe = "cwd"              // readlink; proc_pid_readlink READ_FSCREDS
	ProbeRoot        Probe = "root"             // readlink; proc_pid_readlink READ_FSCREDS
	ProbeFd0         Probe = "fd/0"             // readlink; DAC search on fd/ + proc_fd_access_allowed READ_FSCREDS
	ProbeNSUser      Probe = "ns/user"          // readlink; proc_ns_readlink READ_FSCREDS
	ProbeFdDir       Probe = "fd/"              // getdents; proc_fd_permission: DAC only
	ProbeFdinfoDir   Probe = "fdinfo/"          // getdents; proc_fdinfo_permission READ_FSCREDS
	ProbeFdinfo0     Probe = "fdinfo/0"         // open+read; proc_fdinfo_permission READ_FSCREDS
	ProbeVMReadv     Probe = "process_vm_readv" // mm/process_vm_access.c: mm_access ATTACH_REALCREDS, EACCES->EPERM
	ProbeKcmp        Probe = "kcmp"             // kernel/kcmp.c: kcmp_lock + ptrace_may_access READ_REALCREDS on both
	ProbePidfdGetfd  Probe = "pidfd_getfd"      // kernel/pid.c:pidfd_getfd: ptrace_may_access ATTACH_REALCREDS
	ProbePtraceSeize Probe = "ptrace_seize"     // kernel/ptrace.c:ptrace_attach: __ptrace_may_access ATTACH_REALCREDS
)

// AllProbes lists every probe in a stable order. A Case with no probes runs
// all of them.
var AllProbes = []Probe{
	ProbeMaps, ProbeEnviron, ProbeMem, ProbeIO, ProbeSyscall, ProbeStat,
	ProbeAuxv, ProbeExe, ProbeCwd, ProbeRoot, ProbeFd0, ProbeNSUser,
	ProbeFdDir, ProbeFdinfoDir, ProbeFdinfo0, ProbeVMReadv, ProbeKcmp,
	ProbePidfdGetfd, ProbePtraceSeize,
}

// Case is one experiment: a target, a prober, how they relate and what the
// prober does to the target.
type Case struct {
	// Name is free text for reports.
	Name     string   `json:"name,omitempty"`
	Target   Creds    `json:"target"`
	Prober   Creds    `json:"prober"`
	Landlock Landlock `json:"landlock,omitempty"`
	Relation Relation `json:"relation,omitempty"`
	// Probes to run, in order; empty means AllProbes.
	Probes []Probe `json:"probes,omitempty"`
	// Proc, when set, are the options of a procfs instance the prober
	// reads the target's files through instead of /proc, e.g.
	// "hidepid=invisible,gid=2000" (only hidepid= and gid=). The runner
	// mounts one instance per distinct option string.
	Proc string `json:"proc,omitempty"`
	// TargetExits makes the target exit once it and the prober are ready:
	// the prober then probes a zombie (exited, not yet reaped: no mm, no
	// files, no fs), which the runner, its parent, reaps after the
	// probes. The target keeps the credentials it had, and its dumpable
	// flag is what its mm had when it lost it. Needs relation sibling, a
	// target spawned by the runner itself (no Landlock launcher, no owned
	// user namespace) and no Proc options.
	TargetExits bool `json:"target_exits,omitempty"`
}

func (c *Case) probes() []Probe {
	if len(c.Probes) == 0 {
		return AllProbes
	}
	return c.Probes
}

// selfRelation reports whether the prober probes its own thread group.
func (c *Case) selfRelation() bool {
	r := c.Relation.norm()
	return r == RelSelf || r == RelThread
}

// targetCreds returns the target credentials after applying the relation.
func (c *Case) targetCreds() Creds {
	t := c.Target
	if c.Relation.norm() == RelPtracerAny {
		t.PtracerAny = true
	}
	return t
}

// Validate reports whether the case can be run.
func (c *Case) Validate() error {
	if _, _, _, err := c.Landlock.layout(); err != nil {
		return err
	}
	switch c.Relation.norm() {
	case RelSibling, RelPtracerAny:
	case RelParent:
		if c.Target.UserNS.kind() != NSNone || c.Prober.UserNS.kind() != NSNone {
			return errors.New("prober-is-parent needs both processes in the initial user namespace")
		}
		if c.Target.AppArmor != "" || c.Prober.AppArmor != "" {
			return errors.New("prober-is-parent cannot confine its processes with AppArmor (the target would inherit the prober's profile)")
		}
		if c.Target.SELinux != "" || c.Prober.SELinux != "" {
			return errors.New("prober-is-parent cannot label its processes with SELinux (the target would start in the prober's domain)")
		}
	case RelSelf, RelThread:
		if l := c.Landlock.norm(); l != LandlockNone && l != LandlockProberOnly {
			return fmt.Errorf("relation %s allows landlock none or prober-only, not %s", c.Relation, l)
		}
	default:
		return fmt.Errorf("unknown relation %q", c.Relation)
	}
	if err := c.Prober.Validate(); err != nil {
		return fmt.Errorf("prober: %w", err)
	}
	if !c.selfRelation() {
		if err := c.Target.Validate(); err != nil {
			return fmt.Errorf("target: %w", err)
		}
	}
	if err := validProcOptions(c.Proc); err != nil {
		return err
	}
	if c.TargetExits {
		launcher, _, _, _ := c.Landlock.layout()
		switch {
		case c.Relation.norm() != RelSibling:
			return fmt.Errorf("an exiting target needs relation sibling, not %s", c.Relation.norm())
		case launcher:
			return fmt.Errorf("an exiting target cannot be spawned in a Landlock launcher (layout %s)", c.Landlock)
		case c.Target.UserNS.kind() == NSOwned:
			return errors.New("an exiting target cannot be in an owned user namespace (its helper would reap it)")
		case c.Proc != "":
			return errors.New("an exiting target is probed through /proc only")
		}
	}
	for _, p := range c.probes() {
		if !slices.Contains(AllProbes, p) {
			return fmt.Errorf("unknown probe %q", p)
		}
	}
	return nil
}
