package verify

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/apparmor"
	"github.com/procgate/procgate/oracle"
)

// World builds the model's world for one case from its description: the
// requested credentials (mapped to kernel ids through the requested user
// namespaces), the relation, the Landlock layout and the kernel settings.
// From the result it takes only what the description cannot say: the
// pids, and whether the two processes share a user namespace. It returns
// the world, the caller (the prober) and the target.
func World(k Kernel, c oracle.Case, r oracle.Result) (w *kernel.World, caller, target *kernel.Task, err error) {
	if r.Err != nil || r.Error != "" {
		return nil, nil, nil, errors.New("the case was refused; there is nothing to predict")
	}
	w = kernel.NewWorld(k.Release)
	w.SuidDumpable = k.SuidDumpable
	if w.Proc, err = ProcOptions(c.Proc); err != nil {
		return nil, nil, nil, err
	}
	if w.LSMs, err = k.cachedModules(); err != nil {
		return nil, nil, nil, err
	}
	// The orchestrator: root with every capability, parent of the
	// sibling processes.
	orch := &kernel.Task{Name: "verifier", PID: 1, TGID: 1, Comm: "procgate",
		Cred: rootCred(w.Init), MM: &kernel.MM{Dumpable: kernel.SuidDumpUser, UserNS: w.Init}}
	orch.Leader = orch
	w.AddTask(orch)

	b := builder{w: w, byNS: map[string]*kernel.UserNS{}}
	caller, err = b.task("prober", r.Prober, c.Prober)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("prober: %w", err)
	}
	caller.Parent = orch
	switch c.Relation {
	case oracle.RelSelf:
		target = caller
	case oracle.RelThread:
		if r.Target.Tid == 0 {
			return nil, nil, nil, errors.New("same-thread-group case without the probed thread's tid")
		}
		th := *caller
		th.Name, th.PID, th.Leader = "prober-thread", r.Target.Tid, caller
		target = &th
		w.AddTask(target)
	default:
		target, err = b.task("target", r.Target, c.Target)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("target: %w", err)
		}
		target.Parent = orch
		if c.Relation == oracle.RelParent {
			target.Parent = caller
		}
		if c.Relation == oracle.RelPtracerAny || c.Target.PtracerAny {
			target.Ptracer = &kernel.PtracerException{Any: true}
		}
		if c.TargetExits {
			// A zombie: exit_mm saved whether its mm was SUID_DUMP_USER
			// and dropped it.
			target.UserDumpable = target.MM.Dumpable == kernel.SuidDumpUser
			target.MM, target.State = nil, kernel.Zombie
		}
	}
	if err := landlockLayout(c.Landlock, caller, target); err != nil {
		return nil, nil, nil, err
	}
	if err := w.Validate(); err != nil {
		return nil, nil, nil, fmt.Errorf("inconsistent world: %w", err)
	}
	return w, caller, target, nil
}

// ProcOptions parses a case's procfs options (oracle.Case.Proc) into the
// model's.
func ProcOptions(opts string) (kernel.ProcOptions, error) {
	var p kernel.ProcOptions
	if opts == "" {
		return p, nil
	}
	for o := range strings.SplitSeq(opts, ",") {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "hidepid":
			h, err := kernel.ParseHidePID(v)
			if err != nil {
				return p, fmt.Errorf("procfs options %q: %w", opts, err)
			}
			p.HidePID = h
		case "gid":
			g, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return p, fmt.Errorf("procfs options %q: gid: %w", opts, err)
			}
			p.GID, p.HasGID = kernel.KGID(g), true
		default:
			return p, fmt.Errorf("procfs options %q: unknown option %q", opts, k)
		}
	}
	return p, nil
}

func rootCred(ns *kernel.UserNS) kernel.Cred {
	return kernel.Cred{CapEffective: kernel.CapSetAll, CapPermitted: kernel.CapSetAll, UserNS: ns}
}

// builder adds the case's processes and their namespaces to a world.
type builder struct {
	w    *kernel.World
	byNS map[string]*kernel.UserNS // observed ns/user link → namespace
}

// namespace returns the model namespace of a process placed as want and
// observed in obs (two processes share one namespace exactly when their
// ns/user links are equal).
func (b *builder) namespace(want oracle.UserNS, obs oracle.Observed) (*kernel.UserNS, error) {
	kind := want.Kind
	if kind == "" {
		kind = oracle.NSNone
	}
	if kind == oracle.NSNone {
		if obs.UserNS != "" && !obs.InitNS {
			return nil, fmt.Errorf("requested the initial user namespace, observed %s", obs.UserNS)
		}
		return b.w.Init, nil
	}
	if ns, ok := b.byNS[obs.UserNS]; ok && obs.UserNS != "" {
		return ns, nil
	}
	ns := &kernel.UserNS{Name: fmt.Sprintf("ns%d", len(b.w.Namespaces)), Parent: b.w.Init, Level: 1}
	switch kind {
	case oracle.NSRoot:
		m := []kernel.IDExtent{{Inside: 0, Outside: want.Base, Count: 65536}}
		ns.UIDMap, ns.GIDMap = m, m
	case oracle.NSOwned:
		ns.Owner, ns.Group = kernel.KUID(want.Owner), kernel.KGID(want.OwnerGID)
		ns.UIDMap = []kernel.IDExtent{{Inside: 0, Outside: want.Owner, Count: 1}}
		ns.GIDMap = []kernel.IDExtent{{Inside: 0, Outside: want.OwnerGID, Count: 1}}
	default:
		return nil, fmt.Errorf("unknown user namespace kind %q", kind)
	}
	b.w.Namespaces = append(b.w.Namespaces, ns)
	if obs.UserNS != "" {
		b.byNS[obs.UserNS] = ns
	}
	return ns, nil
}

// task adds one spawned process: its requested credentials in its
// observed pid.
func (b *builder) task(name string, obs oracle.Observed, c oracle.Creds) (*kernel.Task, error) {
	ns, err := b.namespace(c.UserNS, obs)
	if err != nil {
		return nil, err
	}
	uid := func(id uint32) (kernel.KUID, error) {
		v, ok := mapID(ns.UIDMap, id)
		if !ok {
			return 0, fmt.Errorf("uid %d is not mapped in %s", id, ns.Name)
		}
		return kernel.KUID(v), nil
	}
	gid := func(id uint32) (kernel.KGID, error) {
		v, ok := mapID(ns.GIDMap, id)
		if !ok {
			return 0, fmt.Errorf("gid %d is not mapped in %s", id, ns.Name)
		}
		return kernel.KGID(v), nil
	}
	var cr kernel.Cred
	var errs []error
	for _, p := range []struct {
		dst *kernel.KUID
		id  uint32
	}{{&cr.UID, c.RUID}, {&cr.EUID, c.EUID}, {&cr.SUID, c.SUID}, {&cr.FSUID, c.FSUID}} {
		v, err := uid(p.id)
		errs = append(errs, err)
		*p.dst = v
	}
	for _, p := range []struct {
		dst *kernel.KGID
		id  uint32
	}{{&cr.GID, c.RGID}, {&cr.EGID, c.EGID}, {&cr.SGID, c.SGID}, {&cr.FSGID, c.FSGID}} {
		v, err := gid(p.id)
		errs = append(errs, err)
		*p.dst = v
	}
	for _, g := range c.Groups {
		v, err := gid(g)
		errs = append(errs, err)
		cr.Groups = append(cr.Groups, v)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cr.CapEffective, cr.CapPermitted, cr.UserNS = kernel.CapSet(c.CapEff), kernel.CapSet(c.CapPrm), ns
	d := kernel.SuidDumpDisable
	if c.Dumpable == 1 {
		d = kernel.SuidDumpUser
	}
	t := &kernel.Task{Name: name, PID: obs.Pid, TGID: obs.Pid, Comm: "procgate", Cred: cr,
		MM: &kernel.MM{Dumpable: d, UserNS: ns, Exe: obs.Exe}, AppArmor: appArmorLabel(c.AppArmor), SELinux: c.SELinux,
		Cgroup: obs.Cgroup, PIDNSInode: obs.PIDNS}
	t.Leader = t
	b.w.AddTask(t)
	return t, nil
}

func appArmorLabel(profile string) string {
	if profile == "" {
		return "unconfined"
	}
	return profile
}

func mapID(m []kernel.IDExtent, in uint32) (uint32, bool) {
	for _, e := range m {
		if in >= e.Inside && uint64(in) < uint64(e.Inside)+uint64(e.Count) {
			return e.Outside + (in - e.Inside), true
		}
	}
	return 0, false
}

// landlockLayout gives the caller and the target the domains of a layout
// (oracle.Landlock): a launcher domain around both, and each one's own.
func landlockLayout(l oracle.Landlock, caller, target *kernel.Task) error {
	launcher := &kernel.LandlockDomain{Name: "launcher"}
	own := func(name string, parent *kernel.LandlockDomain) *kernel.LandlockDomain {
		return &kernel.LandlockDomain{Name: name, Parent: parent}
	}
	switch l {
	case "", oracle.LandlockNone:
	case oracle.LandlockProberOnly:
		if caller == target || caller.TGID == target.TGID {
			// A domain belongs to the whole thread group here: the
			// prober restricts every thread (psx).
			d := own("prober", nil)
			caller.Landlock, target.Landlock = d, d
			return nil
		}
		caller.Landlock = own("prober", nil)
	case oracle.LandlockTargetOnly:
		target.Landlock = own("target", nil)
	case oracle.LandlockSibling:
		caller.Landlock, target.Landlock = own("prober", nil), own("target", nil)
	case oracle.LandlockShared:
		caller.Landlock, target.Landlock = launcher, launcher
	case oracle.LandlockNested:
		caller.Landlock, target.Landlock = launcher, own("target", launcher)
	case oracle.LandlockNestedReverse:
		caller.Landlock, target.Landlock = own("prober", launcher), launcher
	default:
		return fmt.Errorf("unknown Landlock layout %q", l)
	}
	return nil
}

// parsed caches compiled AppArmor policies by text: the VM suite predicts
// hundreds of cases against one profile set.
var parsed sync.Map // string → []kernel.LSM builder result

type modsOrErr struct {
	aa  *apparmor.Policy
	err error
}

// cachedModules is modules with the AppArmor text parsed once.
func (k Kernel) cachedModules() ([]kernel.LSM, error) {
	if k.AppArmor == "" || !k.Has("apparmor") {
		return k.modules()
	}
	// The SELinux policy is parsed per world: its module keeps an AVC
	// cache, and worlds are built concurrently.
	v, ok := parsed.Load(k.AppArmor)
	if !ok {
		p, err := apparmor.Parse(k.AppArmor)
		v, _ = parsed.LoadOrStore(k.AppArmor, modsOrErr{p, err})
	}
	me := v.(modsOrErr)
	if me.err != nil {
		return nil, fmt.Errorf("apparmor profiles: %w", me.err)
	}
	plain := k
	plain.AppArmor = ""
	mods, err := plain.modules()
	if err != nil {
		return nil, err
	}
	for i, m := range mods {
		if m.Name() == "apparmor" {
			mods[i] = apparmor.New(me.aa)
		}
	}
	return mods, nil
}

// describe is a one-line description of a case for reports.
func describe(c oracle.Case) string {
	var b strings.Builder
	if c.Name != "" {
		b.WriteString(c.Name)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "prober %s, target %s", CredString(c.Prober), CredString(c.Target))
	if c.Relation != "" && c.Relation != oracle.RelSibling {
		fmt.Fprintf(&b, ", %s", c.Relation)
	}
	if c.Landlock != "" && c.Landlock != oracle.LandlockNone {
		fmt.Fprintf(&b, ", landlock %s", c.Landlock)
	}
	if c.Proc != "" {
		fmt.Fprintf(&b, ", procfs %s", c.Proc)
	}
	return b.String()
}

// CredString renders a process's requested credentials for reports: the
// uid and gid quadruples, groups, capability sets (effective/permitted),
// dumpable, no_new_privs, user namespace and security labels.
func CredString(c oracle.Creds) string {
	var b strings.Builder
	fmt.Fprintf(&b, "uid %d/%d/%d/%d gid %d/%d/%d/%d", c.RUID, c.EUID, c.SUID, c.FSUID, c.RGID, c.EGID, c.SGID, c.FSGID)
	if len(c.Groups) > 0 {
		fmt.Fprintf(&b, " groups %v", c.Groups)
	}
	fmt.Fprintf(&b, " caps %s/%s dumpable %d", kernel.CapSet(c.CapEff), kernel.CapSet(c.CapPrm), c.Dumpable)
	if c.NoNewPrivs {
		b.WriteString(" nnp")
	}
	switch c.UserNS.Kind {
	case oracle.NSRoot:
		fmt.Fprintf(&b, " userns(root, base %d)", c.UserNS.Base)
	case oracle.NSOwned:
		fmt.Fprintf(&b, " userns(owner %d)", c.UserNS.Owner)
	}
	if c.AppArmor != "" {
		fmt.Fprintf(&b, " apparmor %s", c.AppArmor)
	}
	if c.SELinux != "" {
		fmt.Fprintf(&b, " selinux %s", c.SELinux)
	}
	return b.String()
}
