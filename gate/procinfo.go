package gate

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/policy"
	"github.com/procgate/procgate/procfs"
)

// procInfo is what the gate reads of one pinned process before deciding:
// its identity for the policy and a fingerprint of everything the
// model's view of it depends on.
type procInfo struct {
	st        procfs.Status
	start     uint64 // stat field 22, in clock ticks since boot
	statRaw   string
	statusRaw string
	exe       policy.Exe
	cgroup    string
	// Values read under the pin that also answer items (exe, cgroup,
	// fd_count), so the items need no second read: exeLink is the link
	// as read, cgroupRaw the whole file; each is valid when its ok flag
	// is set.
	exeLink         string
	cgroupRaw       string
	fdSize          int64
	exeOK, cgroupOK bool
	fdOK            bool
	pidns           uint64
	key             taskKey

	labelsSELinux, labelsAppArmor string
}

// taskKey fingerprints the inputs the model's view of a task is built
// from (credentials, capabilities, relations, state, dump owner, user
// namespace, labels). Two reads of one process with equal keys get the
// same kernel decisions, so a cached view is reused only on an equal key.
type taskKey struct {
	pid, ppid, tracer int
	start             uint64
	uids, gids        [4]uint32
	groups            uint64 // hash of the supplementary groups
	capEff, capPrm    uint64
	state             byte
	hasMM, kthread    bool
	ownUID, ownGID    uint32
	userns            uint64
	labels            uint64 // hash of the LSM labels
}

// labelMods says which attr/ files to read.
type labelMods struct{ selinux, apparmor, smack bool }

// readProcInfo reads the identity of the process pinned by p. It does
// not verify the pin: the caller does so after its last read.
//
// lite skips what only the model's view needs (the user namespace), for
// requests of plain items. need says which optional policy fields to
// read (see policy.Policy.TargetNeeds): the executable, the cgroup, the
// pid namespace; an item that serves one of them reads it itself when it
// was left out (see readItem).
func readProcInfo(p *procfs.Pin, mods labelMods, buf []byte, lite bool, need policy.Needs) (*procInfo, error) {
	status, err := procfs.ReadFile(p.Dir, "status", buf, 1<<16)
	if err != nil {
		return nil, fmt.Errorf("gate: pid %d: read status: %w", p.PID, procfs.Gone(err))
	}
	st, err := procfs.ParseStatus(status)
	if err != nil {
		return nil, fmt.Errorf("gate: pid %d: %w", p.PID, err)
	}
	if st.Pid != p.PID {
		return nil, fmt.Errorf("gate: pid %d: status names pid %d: %w", p.PID, st.Pid, unix.ESRCH)
	}
	pi := &procInfo{st: st, statusRaw: string(status)}
	stat, err := procfs.ReadFile(p.Dir, "stat", buf, 4096)
	if err != nil {
		return nil, fmt.Errorf("gate: pid %d: read stat: %w", p.PID, procfs.Gone(err))
	}
	sf, err := procfs.ParseStat(stat)
	if err != nil {
		return nil, fmt.Errorf("gate: pid %d: %w", p.PID, err)
	}
	pi.start = sf.StartTime
	pi.statRaw = string(stat)
	k := &pi.key
	k.pid, k.ppid, k.tracer, k.start = st.Pid, st.PPid, st.TracerPid, sf.StartTime
	k.uids, k.gids, k.capEff, k.capPrm = st.UIDs, st.GIDs, st.CapEff, st.CapPrm
	if st.State == 'Z' || st.State == 'X' {
		k.state = 'Z' // only the zombie state matters to the model
	}
	k.hasMM, k.kthread = st.HasMM, st.Kthread || sf.Kthread()
	k.groups = hashGroups(st.Groups)
	var sb unix.Stat_t
	if err := unix.Fstatat(p.Dir, "fd", &sb, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		k.ownUID, k.ownGID = sb.Uid, sb.Gid
		pi.fdSize, pi.fdOK = sb.Size, true
	} else if errors.Is(procfs.Gone(err), unix.ESRCH) {
		return nil, fmt.Errorf("gate: pid %d: stat fd/: %w", p.PID, unix.ESRCH)
	}
	if !lite {
		if l, err := procfs.ReadLink(p.Dir, "ns/user"); err == nil {
			k.userns, _ = procfs.ParseNSLink([]byte(l), "user")
		}
	}
	if need&policy.NeedPIDNS != 0 {
		if l, err := procfs.ReadLink(p.Dir, "ns/pid"); err == nil {
			pi.pidns, _ = procfs.ParseNSLink([]byte(l), "pid")
		}
	}
	if !k.kthread && need&policy.NeedExe != 0 {
		if err := unix.Fstatat(p.Dir, "exe", &sb, 0); err == nil {
			pi.exe.Dev, pi.exe.Ino = sb.Dev, sb.Ino
			if l, err := procfs.ReadLink(p.Dir, "exe"); err == nil {
				pi.exe.Path, pi.exeLink, pi.exeOK = l, l, true
			}
		}
	}
	if !k.kthread && need&policy.NeedCgroup != 0 {
		if cg, err := procfs.ReadFile(p.Dir, "cgroup", buf, 1<<16); err == nil && len(cg) < 1<<16 {
			pi.cgroupRaw, pi.cgroupOK = string(cg), true
			pi.cgroup = cgroupPath(pi.cgroupRaw)
		}
	}
	var selinux, apparmor string
	if mods.selinux {
		selinux = procfs.ReadLabel(p.Dir, "attr/current", buf)
	}
	if mods.apparmor {
		apparmor = procfs.ReadLabel(p.Dir, "attr/apparmor/current", buf)
	}
	if mods.selinux || mods.apparmor || mods.smack {
		h := fnv.New64a()
		h.Write([]byte(selinux))
		h.Write([]byte{0})
		h.Write([]byte(apparmor))
		if mods.smack {
			h.Write([]byte{0})
			h.Write([]byte(procfs.ReadLabel(p.Dir, "attr/smack/current", buf)))
		}
		k.labels = h.Sum64()
	}
	pi.st.Name = st.Name
	pi.exe.Path = strings.TrimSuffix(pi.exe.Path, " (deleted)")
	pi.labelsSELinux, pi.labelsAppArmor = selinux, apparmor
	return pi, nil
}

// dumpableHint is the dumpable flag as the dump owner suggests it (the
// owner of fd/ is the task's euid/egid only when its mm is
// SUID_DUMP_USER). It is used only for plain items, where the policy's
// answer decides auditing, never access.
func (pi *procInfo) dumpableHint() bool {
	return pi.key.ownUID == pi.st.UIDs[1] && pi.key.ownGID == pi.st.GIDs[1]
}

// cgroupPath returns the cgroup v2 path ("0::/path") of a cgroup file,
// or the first line's path on a v1-only system.
func cgroupPath(b string) string {
	if p, ok := procfs.CgroupV2Path(b); ok {
		return p
	}
	for line := range strings.SplitSeq(b, "\n") {
		if i := strings.LastIndexByte(line, ':'); i >= 0 {
			return line[i+1:]
		}
	}
	return ""
}

// hashGroups is the FNV-1a hash of the supplementary groups (4 bytes
// each, little-endian).
func hashGroups(groups []uint32) uint64 {
	const offset64, prime64 = 14695981039346656037, 1099511628211
	h := uint64(offset64)
	for _, g := range groups {
		for i := range 4 {
			h ^= uint64(byte(g >> (8 * i)))
			h *= prime64
		}
	}
	return h
}

// subject returns the policy's view of a caller.
func (pi *procInfo) subject(uid, gid uint32) policy.Subject {
	return policy.Subject{Process: policy.Process{
		PID: pi.st.Pid, Comm: pi.st.Name, UID: uid, GID: gid, Groups: pi.st.Groups,
		SELinux: pi.labelsSELinux, AppArmor: pi.labelsAppArmor,
		Exe: pi.exe, Cgroup: pi.cgroup, PIDNS: pi.pidns, CapPermitted: kernel.CapSet(pi.st.CapPrm),
	}}
}

// target returns the policy's view of a target.
func (pi *procInfo) target(dumpable bool) policy.Target {
	return policy.Target{Process: policy.Process{
		PID: pi.st.Pid, Comm: pi.st.Name, UID: pi.st.UIDs[1], GID: pi.st.GIDs[1], Groups: pi.st.Groups,
		SELinux: pi.labelsSELinux, AppArmor: pi.labelsAppArmor,
		Exe: pi.exe, Cgroup: pi.cgroup, PIDNS: pi.pidns, CapPermitted: kernel.CapSet(pi.st.CapPrm),
	}, Dumpable: dumpable}
}
