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
	needCgroup     bpfNeeds = 1 << iota // the rule set exempts a cgroup: its id
	needExe                             // a class names executables
	needCgroupPath                      // a class names cgroups: the path from the root, with ids
	needPIDNS                           // a class names pid namespaces (container selectors)
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
			switch cl.Kind {
			case bpf.KindExe:
				n |= needExe
			case bpf.KindCgroup:
				n |= needCgroup | needCgroupPath
			case bpf.KindPIDNS:
				n |= needPIDNS
			}
		}
	}
	return n
}

// pinDir is where procgate's program pins its rule set, under the
// reader's sysfs (bpflsm.DefaultPinDir on the running system).
func (r *reader) pinDir() string { return pinDirOf(r.opts) }

func pinDirOf(opts Options) string {
	sys := opts.Sys
	if sys == "" {
		sys = "/sys"
	}
	return filepath.Join(sys, strings.TrimPrefix(bpflsm.DefaultPinDir, "/sys/"))
}

// OpenBPFMirror maps the mirror of procgate's BPF LSM program's rule set
// pinned under opts' sysfs, for Options.BPF: a reader that will give up
// the privilege to open pins (procgate serve's, confined) calls it
// first. Nil, nil when nothing is pinned.
func OpenBPFMirror(opts Options) (*bpflsm.Mirror, error) {
	return bpflsm.OpenMirror(pinDirOf(opts))
}

// readBPF reads the rule set of procgate's BPF LSM program when the BPF
// LSM is active: KernelInfo.BPF, or KernelInfo.BPFUnreadable when one is
// pinned but cannot be read. When whether one is pinned cannot be told
// (an unprivileged reader: the pin directory is root's), it notes so.
func (r *reader) readBPF(k *KernelInfo) {
	if m := r.opts.BPF; m != nil {
		rs, err := m.RuleSet()
		switch {
		case err == nil:
			k.BPF = rs
			return
		case !errors.Is(err, bpflsm.ErrDetached):
			k.BPFUnreadable = err.Error()
			r.note("%v; decisions it could change are marked", err)
			return
		}
		// Detached since the mirror was mapped: nothing pinned now, or
		// another attachment, read below (or not: fail closed).
	}
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
// needs them (its pid namespace is read with the ns/pid link, in
// readFiles). An executable that cannot be read (its link asks the
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
		rt.cgroup, rt.cgPath, rt.cgErr = r.cgroupOf(dirfd)
	}
	return nil
}

// cgroupOf resolves the task's cgroup v2 ("0::/path" in its cgroup file)
// to its id, the inode number of its directory under the reader's
// cgroup2 mount (procfs.Cgroup2Mount), and, when the rule set names
// cgroups, to its path from the root with each directory's id
// (procfs.CgroupNodes).
func (r *reader) cgroupOf(dirfd int) (uint64, []kernel.CgroupNode, error) {
	b, err := r.readFile(dirfd, "cgroup")
	if err != nil {
		return 0, nil, err
	}
	path, ok := procfs.CgroupV2Path(string(b))
	if !ok || !strings.HasPrefix(path, "/") {
		return 0, nil, fmt.Errorf("no cgroup v2 path in cgroup: %w", procfs.ErrMalformed)
	}
	if c, ok := r.cgroups[path]; ok {
		return c.id, c.nodes, c.err
	}
	c := r.resolveCgroup(path)
	if r.cgroups == nil {
		r.cgroups = map[string]cgroupFacts{}
	}
	r.cgroups[path] = c
	return c.id, c.nodes, c.err
}

// cgroupFacts is what cgroupOf learned of one cgroup path.
type cgroupFacts struct {
	id    uint64
	nodes []kernel.CgroupNode
	err   error
}

func (r *reader) resolveCgroup(path string) cgroupFacts {
	root := procfs.Cgroup2Mount(r.opts.Sys)
	if root == "" {
		return cgroupFacts{err: fmt.Errorf("no cgroup2 mount at %s/fs/cgroup or %s/fs/cgroup/unified", r.opts.Sys, r.opts.Sys)}
	}
	if r.bpf&needCgroupPath != 0 {
		nodes, err := procfs.CgroupNodes(root, path)
		if err != nil {
			return cgroupFacts{err: err}
		}
		return cgroupFacts{id: nodes[len(nodes)-1].ID, nodes: nodes}
	}
	id, err := bpflsm.CgroupID(filepath.Join(root, path))
	return cgroupFacts{id: id, err: err}
}
