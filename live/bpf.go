package live

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/bpflsm"
	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/bpf"
	"github.com/procgate/procgate/procfs"
)

// bpfNeeds says what procgate's BPF rule set needs read of each task
// beyond its credentials.
type bpfNeeds uint8

const (
	needCgroup bpfNeeds = 1 << iota // the rule set exempts a cgroup
	needExe                         // a class names executables
)

func needsOf(rs *bpf.RuleSet) bpfNeeds {
	if rs == nil {
		return 0
	}
	var n bpfNeeds
	if rs.ExemptCgroup != 0 {
		n |= needCgroup
	}
	for _, c := range rs.Classes {
		for _, cl := range c.Clauses {
			if cl.Kind == bpf.KindExe {
				n |= needExe
			}
		}
	}
	return n
}

// pinDir is where procgate's program pins its rule set, under the
// reader's sysfs (bpflsm.DefaultPinDir on the running system).
func (r *reader) pinDir() string {
	return filepath.Join(r.opts.Sys, strings.TrimPrefix(bpflsm.DefaultPinDir, "/sys/"))
}

// readBPF reads the rule set of procgate's BPF LSM program when the BPF
// LSM is active: KernelInfo.BPF, or KernelInfo.BPFUnreadable when one is
// pinned but cannot be read. When whether one is pinned cannot be told
// (an unprivileged reader: the pin directory is root's), it notes so.
func (r *reader) readBPF(k *KernelInfo) {
	rs, err := bpflsm.Current(r.pinDir())
	switch {
	case errors.Is(err, bpflsm.ErrUnreadable):
		k.BPFUnreadable = err.Error()
		r.note("%v; decisions it could change are marked", err)
	case err != nil:
		r.note("whether procgate's BPF LSM program enforces a rule set could not be read (%v); if it does, its restrictions are not in these answers", err)
	default:
		k.BPF = rs
	}
}

// readBPFFacts reads the task's cgroup and executable when the rule set
// needs them. An executable that cannot be read (its link asks the
// ptrace check) or a cgroup that cannot be resolved leaves the fact
// unknown; a task without an address space has no executable.
func (r *reader) readBPFFacts(pid, dirfd int, rt *rawTask) error {
	rt.bpf = r.bpf
	if r.bpf&needExe != 0 {
		var sb unix.Stat_t
		switch err := unix.Fstatat(dirfd, "exe", &sb, 0); {
		case err == nil:
			id := kernel.FileIDOfStat(sb.Dev, sb.Ino)
			rt.exe = &id
		case r.pin && errors.Is(err, unix.ESRCH):
			return &ProcessError{PID: pid, Op: "stat exe", Err: procfs.Gone(err)}
		case errors.Is(err, unix.ENOENT) && !rt.st.HasMM:
			// no address space, no executable
		default:
			rt.exeErr = err
		}
	}
	if r.bpf&needCgroup != 0 {
		rt.cgroup, rt.cgErr = r.cgroupID(dirfd)
	}
	return nil
}

// cgroup2Mount returns where the cgroup v2 hierarchy is mounted under
// sys: fs/cgroup (unified), or fs/cgroup/unified (systemd's hybrid
// layout); "" when neither is.
func cgroup2Mount(sys string) string {
	for _, d := range []string{"fs/cgroup", "fs/cgroup/unified"} {
		var fs unix.Statfs_t
		p := filepath.Join(sys, d)
		if unix.Statfs(p, &fs) == nil && fs.Type == unix.CGROUP2_SUPER_MAGIC {
			return p
		}
	}
	return ""
}

// cgroupID resolves the task's cgroup v2 ("0::/path" in its cgroup file)
// to its id, the inode number of its directory under the reader's
// cgroup2 mount (cgroup2Mount).
func (r *reader) cgroupID(dirfd int) (uint64, error) {
	b, err := r.readFile(dirfd, "cgroup")
	if err != nil {
		return 0, err
	}
	path, ok := procfs.CgroupV2Path(string(b))
	if !ok || !strings.HasPrefix(path, "/") {
		return 0, fmt.Errorf("no cgroup v2 path in cgroup: %w", procfs.ErrMalformed)
	}
	if id, ok := r.cgroupIDs[path]; ok {
		return id, nil
	}
	root := cgroup2Mount(r.opts.Sys)
	if root == "" {
		return 0, fmt.Errorf("no cgroup2 mount at %s/fs/cgroup or %s/fs/cgroup/unified", r.opts.Sys, r.opts.Sys)
	}
	id, err := bpflsm.CgroupID(filepath.Join(root, path))
	if err != nil {
		return 0, err
	}
	if r.cgroupIDs == nil {
		r.cgroupIDs = map[string]uint64{}
	}
	r.cgroupIDs[path] = id
	return id, nil
}
