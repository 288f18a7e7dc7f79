package live

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/kernel/lsm/bpf"
	"github.com/procgate/procgate/procfs"
)

// KernelInfo is what Read learned about the running kernel, as read.
type KernelInfo struct {
	// Release is uname's release string ("6.18.44-fc-v657").
	Release string
	// LSMs lists the active security modules in the kernel's order
	// ("lockdown,capability,landlock,bpf").
	LSMs []string
	// LSMSource is the file the list came from, or "inferred" when
	// securityfs could not be read and the list was pieced together from
	// other files (see docs/live.md).
	LSMSource string
	// MountedSecurityFS is set when Read mounted securityfs itself.
	MountedSecurityFS bool
	// YamaScope is kernel.yama.ptrace_scope, -1 when Yama is not active.
	YamaScope int
	// LandlockABI is the Landlock ABI version, 0 when Landlock is not
	// available.
	LandlockABI int
	// SuidDumpable is fs.suid_dumpable.
	SuidDumpable int
	// Proc is the procfs mount read, with its hidepid= and gid= options.
	Proc procfs.Mount
	// InitialUserNS reports whether the reader runs in the initial user
	// namespace; when it does not, its own namespace plays the initial
	// one and every id is relative to it.
	InitialUserNS bool
	// BPF is the rule set procgate's BPF LSM program enforces (procgate
	// enforce, pinned under bpflsm.DefaultPinDir), read back from the
	// program's map; nil when none is pinned or the BPF LSM is not
	// active.
	BPF *bpf.RuleSet
	// BPFUnreadable, when set, says why a pinned rule set could not be
	// read: the program may be enforcing restrictions the model lacks.
	BPFUnreadable string
}

// landlockCreateRulesetVersion is LANDLOCK_CREATE_RULESET_VERSION.
const landlockCreateRulesetVersion = unix.LANDLOCK_CREATE_RULESET_VERSION

// LandlockABI asks the kernel for its Landlock ABI version
// (landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)). It
// returns 0 when Landlock is not built in (ENOSYS) or disabled at boot
// (EOPNOTSUPP).
func LandlockABI() int {
	v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, landlockCreateRulesetVersion)
	if errno != 0 {
		return 0
	}
	return int(v)
}

// ReadKernel reads the kernel-wide facts a Read starts with, for
// Options.Kernel.
func ReadKernel(opts Options) (KernelInfo, error) {
	r, err := newReader(opts)
	if err != nil {
		return KernelInfo{}, err
	}
	defer r.close()
	return r.readKernel()
}

// readKernel reads the kernel's settings.
func (r *reader) readKernel() (KernelInfo, error) {
	var k KernelInfo
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return k, fmt.Errorf("uname: %w", err)
	}
	k.Release = unix.ByteSliceToString(u.Release[:])
	k.LandlockABI = LandlockABI()
	k.YamaScope = -1
	if b, err := os.ReadFile(filepath.Join(r.opts.Proc, "sys/kernel/yama/ptrace_scope")); err == nil {
		v, err := strconv.Atoi(string(bytes.TrimSpace(b)))
		if err != nil || v < 0 || v > 3 {
			return k, fmt.Errorf("kernel.yama.ptrace_scope %q: %w", bytes.TrimSpace(b), procfs.ErrMalformed)
		}
		k.YamaScope = v
	}
	if b, err := os.ReadFile(filepath.Join(r.opts.Proc, "sys/fs/suid_dumpable")); err == nil {
		v, err := strconv.Atoi(string(bytes.TrimSpace(b)))
		if err != nil || v < 0 || v > 2 {
			return k, fmt.Errorf("fs.suid_dumpable %q: %w", bytes.TrimSpace(b), procfs.ErrMalformed)
		}
		k.SuidDumpable = v
	} else {
		r.note("fs.suid_dumpable could not be read (%v); assumed 0", err)
	}
	mi, pm, found, err := r.root.Mountinfo()
	if err != nil {
		return k, err
	}
	if !found {
		r.note("no procfs mount at %s in mountinfo; hidepid assumed off", r.root.Path())
		pm = procfs.Mount{MountPoint: r.root.Path()}
	}
	k.Proc = pm
	if m, err := os.ReadFile(filepath.Join(r.opts.Proc, "self/uid_map")); err == nil {
		ext, err := procfs.ParseIDMap(m)
		k.InitialUserNS = err == nil && len(ext) == 1 && ext[0] == kernel.IDExtent{Inside: 0, Outside: 0, Count: ^uint32(0)}
	}
	if !k.InitialUserNS {
		r.note("the reader does not run in the initial user namespace: its own namespace plays the initial one and ids are relative to it")
	}
	k.LSMs, k.LSMSource, k.MountedSecurityFS = r.readLSMs(mi, &k)
	if slices.Contains(k.LSMs, "bpf") {
		r.readBPF(&k)
	}
	return k, nil
}

// readLSMs reads the active modules from securityfs, mounting it when
// asked to and it is not mounted; otherwise it infers the list.
func (r *reader) readLSMs(mountinfo []byte, k *KernelInfo) ([]string, string, bool) {
	path := filepath.Join(r.opts.Sys, procfs.LSMFile)
	dir := filepath.Dir(path)
	if lsms, err := procfs.ReadLSMs(r.opts.Sys); err == nil {
		return lsms, path, false
	}
	mounted := false
	if r.opts.MountSecurityFS && !procfs.HasMount(mountinfo, dir, "securityfs") {
		if err := unix.Mount("securityfs", dir, "securityfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err == nil {
			mounted = true
			if lsms, err := procfs.ReadLSMs(r.opts.Sys); err == nil {
				return lsms, path, true
			}
		} else {
			r.note("securityfs is not mounted and mounting it at %s failed: %v", dir, err)
		}
	}
	// Inference: capability is always there; the others show themselves
	// through their own files.
	lsms := []string{"capability"}
	if k.LandlockABI > 0 {
		lsms = append(lsms, "landlock")
	}
	if k.YamaScope >= 0 {
		lsms = append(lsms, "yama")
	}
	if exists(filepath.Join(r.opts.Sys, "fs/selinux/enforce")) {
		lsms = append(lsms, "selinux")
	}
	if b, err := os.ReadFile(filepath.Join(r.opts.Sys, "module/apparmor/parameters/enabled")); err == nil && bytes.HasPrefix(b, []byte("Y")) {
		lsms = append(lsms, "apparmor")
	}
	if exists(filepath.Join(r.opts.Sys, "fs/smackfs/load2")) {
		lsms = append(lsms, "smack")
	}
	r.note("%s could not be read; the module list %v was inferred from other files and may be incomplete", path, lsms)
	return lsms, "inferred", mounted
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// errNoYamaScope is returned when Yama is listed but its scope cannot be read.
var errNoYamaScope = errors.New("yama is active but kernel.yama.ptrace_scope cannot be read")
