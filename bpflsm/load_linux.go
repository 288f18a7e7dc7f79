package bpflsm

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/kernel/lsm/bpf"
	"github.com/procgate/procgate/procfs"
)

// DefaultPinDir is where Attach pins the program's links and maps.
const DefaultPinDir = "/sys/fs/bpf/procgate"

// The pinned objects, under the pin directory.
const (
	pinAccessCheck = "ptrace_access_check"
	pinTraceme     = "ptrace_traceme"
	pinRuleSets    = "rulesets"
	pinPairSets    = "pairsets"
	pinCounters    = "counters"
	pinDenials     = "denials"
)

// enforceObjects are the objects Attach loads: the two hooks and their
// maps (not the benchmark's program).
type enforceObjects struct {
	AccessCheck *ebpf.Program `ebpf:"procgate_ptrace_access_check"`
	Traceme     *ebpf.Program `ebpf:"procgate_ptrace_traceme"`
	Rulesets    *ebpf.Map     `ebpf:"rulesets"`
	Pairsets    *ebpf.Map     `ebpf:"pairsets"`
	Counters    *ebpf.Map     `ebpf:"counters"`
	Denials     *ebpf.Map     `ebpf:"denials"`
}

func (o *enforceObjects) Close() {
	for _, c := range []interface{ Close() error }{o.AccessCheck, o.Traceme, o.Rulesets, o.Pairsets, o.Counters, o.Denials} {
		if c != nil {
			_ = c.Close()
		}
	}
}

// ErrUnsupported says that the running kernel cannot run the program;
// the error that wraps it names the cause.
var ErrUnsupported = errors.New("the kernel cannot enforce procgate's BPF LSM program")

// Supported checks what the program needs of the running kernel before
// anything is loaded: the BPF LSM in the active module list and the
// kernel's BTF (for the CO-RE relocations).
func Supported() error {
	lsms, err := procfs.ReadLSMs("")
	if err != nil {
		return fmt.Errorf("%w: cannot read the active security modules: %v (is securityfs mounted on /sys/kernel/security?)", ErrUnsupported, err)
	}
	if !slices.Contains(lsms, "bpf") {
		active := strings.Join(lsms, ",")
		return fmt.Errorf("%w: the BPF LSM is not active (active: %s); boot with bpf in lsm= (for example lsm=%s,bpf) on a kernel built with CONFIG_BPF_LSM=y", ErrUnsupported, active, active)
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return fmt.Errorf("%w: the kernel has no BTF (/sys/kernel/btf/vmlinux: %v; CONFIG_DEBUG_INFO_BTF=y)", ErrUnsupported, err)
	}
	return nil
}

// Servable refuses a rule set the program cannot enforce on the running
// kernel (Attach and Reload call it): cgroup selectors need struct
// cgroup's ancestors[] (Linux 6.0, "cgroup: Replace
// cgroup->ancestor_ids[] with ->ancestors[]"), which the program indexes
// by level.
func Servable(rs *bpf.RuleSet) error {
	if !selectsCgroups(rs) {
		return nil
	}
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return fmt.Errorf("%w: the kernel's BTF: %v", ErrUnsupported, err)
	}
	var cg *btf.Struct
	if err := spec.TypeByName("cgroup", &cg); err != nil {
		return fmt.Errorf("%w: the kernel's BTF has no struct cgroup: %v", ErrUnsupported, err)
	}
	for _, m := range cg.Members {
		if m.Name == "ancestors" {
			return nil
		}
	}
	return fmt.Errorf("%w: the rule set selects cgroups, which the program reads through struct cgroup's ancestors[] (Linux 6.0); this kernel has none: leave cgroup selectors to the broker here", ErrUnsupported)
}

// selectsCgroups reports whether a class of rs has a cgroup clause.
func selectsCgroups(rs *bpf.RuleSet) bool {
	return slices.ContainsFunc(rs.Classes, func(c bpf.Class) bool { return c.Reads(bpf.KindCgroup) })
}

// refused wraps an error of the kernel refusing to load or attach a
// program of the LSM type. A refusal (EPERM, EACCES) is reported by its
// errno alone: the library's hint about RLIMIT_MEMLOCK does not apply
// (Attach raises it, and kernels from 5.11 do not use it).
func refused(what string, err error) error {
	var en unix.Errno
	if errors.As(err, &en) && (en == unix.EPERM || en == unix.EACCES) {
		return fmt.Errorf("%w: the kernel refused to %s: %w (the BPF LSM is active, yet this kernel does not let this process load or attach LSM programs: a lockdown mode, a hypervisor or a distribution patch can refuse them even to root with every capability)", ErrUnsupported, what, en)
	}
	if errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("%w: the kernel refused to %s: %w", ErrUnsupported, what, err)
	}
	return fmt.Errorf("bpflsm: %s: %w", what, err)
}

// Attach loads the program with rule set rs, attaches it to the two
// hooks and pins the links and maps under dir (created, and bpffs
// mounted on /sys/fs/bpf if it is not). A previous attachment pinned
// under dir is an error: Reload it instead.
func Attach(rs *bpf.RuleSet, dir string) error {
	if err := Supported(); err != nil {
		return err
	}
	if err := Servable(rs); err != nil {
		return err
	}
	enc, err := encode(rs, 1)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, pinRuleSets)); err == nil {
		return fmt.Errorf("bpflsm: already attached (%s exists): reload or detach it", filepath.Join(dir, pinRuleSets))
	}
	if err := mountBPFFS(dir); err != nil {
		return err
	}
	// Before 5.11 BPF memory counts against RLIMIT_MEMLOCK (from 5.11,
	// against the memory cgroup). Not cilium/ebpf's rlimit package: its
	// initialiser creates a BPF map in every process of this binary.
	// Best effort: where raising it is refused (no CAP_SYS_RESOURCE), a
	// kernel that needs it fails the load below with EPERM.
	inf := unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}
	_ = unix.Setrlimit(unix.RLIMIT_MEMLOCK, &inf)
	spec, err := ptraceSpec()
	if err != nil {
		return err
	}
	var objs enforceObjects
	if err := spec.Copy().LoadAndAssign(&objs, nil); err != nil {
		return refused("load the program", err)
	}
	defer objs.Close()
	if err := install(spec, enc, objs.Rulesets, objs.Pairsets); err != nil {
		return err
	}
	var pinned []string
	unpin := func() {
		for _, p := range pinned {
			_ = os.Remove(p)
		}
	}
	pin := func(name string, p interface{ Pin(string) error }) error {
		path := filepath.Join(dir, name)
		if err := p.Pin(path); err != nil {
			return fmt.Errorf("bpflsm: pin %s: %w", path, err)
		}
		pinned = append(pinned, path)
		return nil
	}
	mirror, err := newMirror(enc)
	if err != nil {
		return err
	}
	defer mirror.Close()
	if err := errors.Join(pin(pinRuleSets, objs.Rulesets), pin(pinPairSets, objs.Pairsets), pin(pinCounters, objs.Counters), pin(pinDenials, objs.Denials), pin(pinMirror, mirror)); err != nil {
		unpin()
		return err
	}
	for _, h := range []struct {
		name string
		prog *ebpf.Program
	}{{pinAccessCheck, objs.AccessCheck}, {pinTraceme, objs.Traceme}} {
		l, err := link.AttachLSM(link.LSMOptions{Program: h.prog})
		if err != nil {
			unpin()
			return refused("attach the program to "+h.name, err)
		}
		err = pin(h.name, l)
		l.Close() // the pin holds the link
		if err != nil {
			unpin()
			return err
		}
	}
	return nil
}

// ptraceSpec is the program's collection as the embedded object holds it,
// parsed once (its BTF included): Attach loads a copy, and every Reload
// makes a rule-set map from its inner map's spec.
var ptraceSpec = sync.OnceValues(loadPtrace)

// newInnerOf makes an empty map of the kind the outer map outer holds
// (what names it, for errors).
func newInnerOf(spec *ebpf.CollectionSpec, outer, what string) (*ebpf.Map, error) {
	o := spec.Maps[outer]
	if o == nil || o.InnerMap == nil {
		return nil, fmt.Errorf("bpflsm: the object has no %s", what)
	}
	m, err := ebpf.NewMap(o.InnerMap.Copy())
	if err != nil {
		return nil, fmt.Errorf("bpflsm: create a %s: %w", what, err)
	}
	return m, nil
}

// newInner makes a rule-set map holding val.
func newInner(spec *ebpf.CollectionSpec, val *ptraceRuleset) (*ebpf.Map, error) {
	m, err := newInnerOf(spec, ptraceMapRulesets, "rule-set map")
	if err != nil {
		return nil, err
	}
	if err := m.Put(uint32(0), val); err != nil {
		m.Close()
		return nil, fmt.Errorf("bpflsm: fill the rule-set map: %w", err)
	}
	return m, nil
}

// newPairs makes a map of hashed rules holding pairs.
func newPairs(spec *ebpf.CollectionSpec, pairs map[ptracePairKey]ptracePairVal) (*ebpf.Map, error) {
	m, err := newInnerOf(spec, ptraceMapPairsets, "map of hashed rules")
	if err != nil {
		return nil, err
	}
	keys := make([]ptracePairKey, 0, len(pairs))
	vals := make([]ptracePairVal, 0, len(pairs))
	for k, v := range pairs {
		keys, vals = append(keys, k), append(vals, v)
	}
	if _, err := m.BatchUpdate(keys, vals, nil); err != nil {
		// Kernels without batch operations on hash maps (before 5.6):
		// one by one.
		for i := range keys {
			if err := m.Put(keys[i], vals[i]); err != nil {
				m.Close()
				return nil, fmt.Errorf("bpflsm: fill the map of hashed rules: %w", err)
			}
		}
	}
	return m, nil
}

// install puts an encoded rule set in force: it stages the rule set's
// maps, swaps them in and waits for a grace period.
func install(spec *ebpf.CollectionSpec, enc *encoded, rulesets, pairsets *ebpf.Map) error {
	st, err := stage(spec, enc)
	if err != nil {
		return err
	}
	defer st.close()
	if err := st.swap(rulesets, pairsets); err != nil {
		return err
	}
	graceful()
	return nil
}

// staged is an encoded rule set's maps, made and filled, not yet in
// force.
type staged struct {
	epoch       uint64
	pairs, rule *ebpf.Map
}

// stage makes and fills the maps of enc: its hashed rules and its rule
// set.
func stage(spec *ebpf.CollectionSpec, enc *encoded) (*staged, error) {
	pm, err := newPairs(spec, enc.pairs)
	if err != nil {
		return nil, err
	}
	inner, err := newInner(spec, enc.val)
	if err != nil {
		pm.Close()
		return nil, err
	}
	return &staged{epoch: enc.val.Epoch, pairs: pm, rule: inner}, nil
}

func (st *staged) close() {
	st.pairs.Close()
	st.rule.Close()
}

// swap puts the staged rule set in force: its hashed rules into the
// slot of its epoch (the rule set in force uses the other; the one two
// epochs old, whose slot it is, is no hook's since the last install's
// grace period), then the rule set itself, in one update of the outer
// map. The caller then waits for a grace period (graceful) before the
// next swap. BPF_ANY: an array of maps refuses every other flag
// (kernel/bpf/arraymap.c: bpf_fd_array_map_update_elem).
func (st *staged) swap(rulesets, pairsets *ebpf.Map) error {
	if err := pairsets.Update(uint32(st.epoch&1), st.pairs, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("bpflsm: install the hashed rules: %w", err)
	}
	if err := rulesets.Update(uint32(0), st.rule, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("bpflsm: swap the rule set: %w", err)
	}
	return nil
}

// graceful waits until every hook that may have seen the rule set just
// swapped out has returned: an RCU grace period (MEMBARRIER_CMD_GLOBAL
// runs synchronize_rcu; the BPF LSM runs programs under rcu_read_lock).
// The next reload fills that rule set's slot of hashed rules. Where the
// command is refused (nohz_full), a pause longer than any hook.
func graceful() {
	const membarrierCmdGlobal = 1 // MEMBARRIER_CMD_GLOBAL
	if _, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, membarrierCmdGlobal, 0, 0); errno != 0 {
		time.Sleep(100 * time.Millisecond)
	}
}

// current reads the rule set in force from the outer map. The slot names
// the inner map by id, and a reload that swaps it in between frees the
// map that id named (ENOENT when it is opened): read again, a few times.
func current(rulesets *ebpf.Map) (*ptraceRuleset, error) {
	var err error
	for range 5 {
		var inner *ebpf.Map
		if err = rulesets.Lookup(uint32(0), &inner); err != nil {
			err = fmt.Errorf("the rule-set slot: %w", err)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, err
		}
		var val ptraceRuleset
		err = inner.Lookup(uint32(0), &val)
		inner.Close()
		if err != nil {
			return nil, fmt.Errorf("the rule set: %w", err)
		}
		return &val, nil
	}
	return nil, err
}

// lockDir holds an exclusive lock on dir until the returned function
// runs: one reload at a time (each takes the next epoch).
func lockDir(dir string) (func(), error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("bpflsm: not attached: %w", err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bpflsm: lock %s: %w", dir, err)
	}
	return func() { unix.Close(fd) }, nil
}

// Reload replaces the attached program's rule set with rs: its hashed
// rules go to the slot the rule set in force does not use, then one
// update of the outer map swaps the rule set, so a hook sees the old
// rule set or the new one, never a mix and never none. One reload at a
// time (a lock on dir). On an error the old rule set stays.
func Reload(rs *bpf.RuleSet, dir string) error {
	unlock, err := lockDir(dir)
	if err != nil {
		return err
	}
	defer unlock()
	outer, err := ebpf.LoadPinnedMap(filepath.Join(dir, pinRuleSets), nil)
	if err != nil {
		return fmt.Errorf("bpflsm: not attached: %w", err)
	}
	defer outer.Close()
	pairsets, err := ebpf.LoadPinnedMap(filepath.Join(dir, pinPairSets), nil)
	if err != nil {
		return fmt.Errorf("bpflsm: not attached by this version: %w (detach, then attach)", err)
	}
	defer pairsets.Close()
	cur, err := current(outer)
	if err != nil {
		return fmt.Errorf("bpflsm: %w", err)
	}
	if err := Servable(rs); err != nil {
		return err
	}
	enc, err := encode(rs, cur.Epoch+1)
	if err != nil {
		return err
	}
	spec, err := ptraceSpec()
	if err != nil {
		return err
	}
	mirror, err := openMirrorRW(dir)
	if err != nil {
		return err
	}
	if mirror == nil {
		return fmt.Errorf("bpflsm: not attached by this version: no mirror in %s (detach, then attach)", dir)
	}
	defer mirror.close()
	// The mirror is being rewritten (its readers wait) only while the
	// maps are swapped: they are made before, and the grace period
	// (which orders this swap before the next reload's) is waited for
	// after.
	st, err := stage(spec, enc)
	if err != nil {
		return err
	}
	defer st.close()
	if err := mirror.publish(enc, func() error { return st.swap(outer, pairsets) }); err != nil {
		return err
	}
	graceful()
	return nil
}

// Status is what Stat reports of an attachment.
type Status struct {
	// Attached says the links are pinned (the program enforces).
	Attached bool
	// Generation is the rule set's.
	Generation uint64
	// Classes counts the rule set's classes of class bits (bpf.Layout:
	// the classes of its hashed rules take none and are not counted).
	Classes int
	// Decisions, Denials and Unset count the hook's calls, its denials,
	// and its calls that found no rule set, since the attachment; Lost
	// counts the denials the ring buffer had no room to report (see
	// OpenDenials); Unslotted the denials for want of the hashed rules'
	// slot, Preempted those of decisions whose scratch another took while
	// they were preempted (ptrace.bpf.c: owner). The last two fail closed
	// and are not reported. CgroupUnserved counts the denials of a rule
	// set that selects cgroups on a kernel whose struct cgroup has no
	// ancestors[] (before 6.0): Attach and Reload refuse such a rule set,
	// and the program fails closed if it meets one.
	Decisions, Denials, Unset, Lost, Unslotted, Preempted, CgroupUnserved uint64
}

// Stat reports on the attachment pinned under dir.
func Stat(dir string) (Status, error) {
	var st Status
	for _, n := range []string{pinAccessCheck, pinTraceme} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			st.Attached = true
		}
	}
	if !st.Attached {
		return st, nil
	}
	outer, err := ebpf.LoadPinnedMap(filepath.Join(dir, pinRuleSets), nil)
	if err != nil {
		return st, fmt.Errorf("bpflsm: %w", err)
	}
	defer outer.Close()
	val, err := current(outer)
	if err != nil {
		return st, fmt.Errorf("bpflsm: %w", err)
	}
	st.Generation = val.Generation
	st.Classes = bits.OnesCount64(val.Classes)
	counters, err := ebpf.LoadPinnedMap(filepath.Join(dir, pinCounters), nil)
	if err != nil {
		return st, fmt.Errorf("bpflsm: %w", err)
	}
	defer counters.Close()
	for i, p := range []*uint64{&st.Decisions, &st.Denials, &st.Unset, &st.Lost, &st.Unslotted, &st.Preempted, &st.CgroupUnserved} {
		var per []uint64
		if err := counters.Lookup(uint32(i), &per); err != nil {
			return st, fmt.Errorf("bpflsm: counters: %w", err)
		}
		for _, v := range per {
			*p += v
		}
	}
	return st, nil
}

// Detach removes the attachment pinned under dir: the hooks stop
// enforcing once the pins are gone. Nothing pinned is not an error.
func Detach(dir string) error {
	var errs []error
	// Readers of the mirror learn that it no longer speaks for the
	// kernel.
	if m, err := openMirrorRW(dir); err != nil {
		errs = append(errs, err)
	} else if m != nil {
		m.detach()
		errs = append(errs, m.close())
	}
	for _, n := range []string{pinAccessCheck, pinTraceme, pinRuleSets, pinPairSets, pinCounters, pinDenials, pinMirror} {
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// mountBPFFS makes dir, mounting bpffs on /sys/fs/bpf first when dir is
// under it and it is not mounted.
func mountBPFFS(dir string) error {
	const root = "/sys/fs/bpf"
	if strings.HasPrefix(dir, root+"/") {
		var st unix.Statfs_t
		if err := unix.Statfs(root, &st); err != nil || st.Type != unix.BPF_FS_MAGIC {
			if err := os.MkdirAll(root, 0o700); err != nil {
				return err
			}
			if err := unix.Mount("bpf", root, "bpf", 0, "mode=0700"); err != nil {
				return fmt.Errorf("bpflsm: mount bpffs on %s: %w", root, err)
			}
		}
	}
	return os.MkdirAll(dir, 0o700)
}

// CgroupID returns the id of the cgroup v2 directory path (the inode
// number the kernel reports as the cgroup id), for RuleSet.ExemptCgroup.
func CgroupID(path string) (uint64, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return 0, fmt.Errorf("bpflsm: cgroup %s: %w", path, err)
	}
	if fs.Type != unix.CGROUP2_SUPER_MAGIC {
		return 0, fmt.Errorf("bpflsm: %s is not a cgroup v2 directory", path)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("bpflsm: cgroup %s: %w", path, err)
	}
	return st.Ino, nil
}

// ErrUnreadable says that a rule set is pinned (procgate's program may
// be enforcing it) but could not be read.
var ErrUnreadable = errors.New("procgate's BPF LSM rule set is pinned but cannot be read")

// Current returns the rule set the program pinned under dir enforces, read
// back from its map, or nil when nothing is pinned there. An error
// wrapping ErrUnreadable means a rule set is pinned but its map could
// not be read: kernels before 6.5 refuse every bpf(2) command to a
// process without CAP_BPF or CAP_SYS_ADMIN while
// kernel.unprivileged_bpf_disabled is set (Debian's default). Any other
// error means whether one is pinned could not be told (the pin
// directory is root's alone).
func Current(dir string) (*bpf.RuleSet, error) {
	path := filepath.Join(dir, pinRuleSets)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("bpflsm: whether a rule set is pinned: %w", err)
	}
	outer, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %w", ErrUnreadable, path, err)
	}
	defer outer.Close()
	pairsPath := filepath.Join(dir, pinPairSets)
	pairSets, err := ebpf.LoadPinnedMap(pairsPath, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %w", ErrUnreadable, pairsPath, err)
	}
	defer pairSets.Close()
	// Two reloads between reading the rule set and reading its hashed
	// rules fill their slot with another epoch's: read both again.
	var val *ptraceRuleset
	var pairs map[ptracePairKey]ptracePairVal
	for range 8 {
		if val, err = current(outer); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrUnreadable, path, err)
		}
		pairs, err = readPairs(pairSets, pairsPath, val.Epoch)
		if !errors.Is(err, errReloaded) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	rs, err := decode(val, pairs)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	return rs, nil
}

// errReloaded says that the hashed rules read were not the epoch's: the
// rule set was reloaded twice while it was read.
var errReloaded = errors.New("reloaded while read")

// readPairs reads the hashed rules of epoch from outer, the map of
// hashed-rule maps pinned at path.
func readPairs(outer *ebpf.Map, path string, epoch uint64) (map[ptracePairKey]ptracePairVal, error) {
	var pm *ebpf.Map
	if err := outer.Lookup(uint32(epoch&1), &pm); errors.Is(err, os.ErrNotExist) {
		// The map the slot named was swapped out and freed before it
		// was opened.
		return nil, fmt.Errorf("%s: slot %d: %w: %w", path, epoch&1, err, errReloaded)
	} else if err != nil {
		return nil, fmt.Errorf("%s: slot %d: %w", path, epoch&1, err)
	}
	defer pm.Close()
	out := map[ptracePairKey]ptracePairVal{}
	var k ptracePairKey
	var v ptracePairVal
	it := pm.Iterate()
	for it.Next(&k, &v) {
		out[k] = v
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if e, ok := epochOf(out); !ok || e != epoch {
		return nil, fmt.Errorf("%s: the hashed rules are of another epoch than the rule set's %d: %w", path, epoch, errReloaded)
	}
	return out, nil
}

// PinRuleSet pins, under dir, a rule-set map holding rs as Attach pins the
// program's, and its mirror, without loading the program: Current and a
// Mirror read it back as they read an attached program's (Reload and
// Detach work on it too). The readers of the rule set (the model of
// a live system) are tested with it where the kernel refuses LSM
// programs; nothing enforces it.
func PinRuleSet(rs *bpf.RuleSet, dir string) error {
	enc, err := encode(rs, 1)
	if err != nil {
		return err
	}
	spec, err := ptraceSpec()
	if err != nil {
		return err
	}
	rulesets, err := ebpf.NewMap(spec.Maps[ptraceMapRulesets].Copy())
	if err != nil {
		return fmt.Errorf("bpflsm: create the rule-set slot: %w", err)
	}
	defer rulesets.Close()
	pairsets, err := ebpf.NewMap(spec.Maps[ptraceMapPairsets].Copy())
	if err != nil {
		return fmt.Errorf("bpflsm: create the hashed rules' slots: %w", err)
	}
	defer pairsets.Close()
	if err := install(spec, enc, rulesets, pairsets); err != nil {
		return err
	}
	mirror, err := newMirror(enc)
	if err != nil {
		return err
	}
	defer mirror.Close()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return errors.Join(rulesets.Pin(filepath.Join(dir, pinRuleSets)), pairsets.Pin(filepath.Join(dir, pinPairSets)),
		mirror.Pin(filepath.Join(dir, pinMirror)))
}
