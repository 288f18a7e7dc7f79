package oracle

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// procMounts holds the procfs instances mounted for cases with
// [Case.Proc] options: one per distinct option string, each a new
// instance (procfs mounts have their own hidepid= and gid= since Linux
// 5.8), unmounted at Close.
//
// Under hidepid=ptraceable the kernel's answer depends on the dentry
// cache: proc_pid_lookup hides a process the caller may not trace
// (ENOENT), but a /proc/<pid> dentry cached by another process's lookup
// skips it, and proc_pid_permission answers EPERM. So that the answer
// depends on the case alone, every prober gets its own ptraceable
// instance (dentries are per superblock).
type procMounts struct {
	mu   sync.Mutex
	dir  string
	byOp map[string]string
	errs map[string]error
}

// validProcOptions accepts the procfs options a case may ask for.
func validProcOptions(opts string) error {
	if opts == "" {
		return nil
	}
	for o := range strings.SplitSeq(opts, ",") {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "hidepid":
			switch v {
			case "0", "1", "2", "4", "off", "noaccess", "invisible", "ptraceable":
				continue
			}
			return fmt.Errorf("procfs option %q: hidepid wants off, noaccess, invisible or ptraceable", o)
		case "gid":
			var g uint32
			if _, err := fmt.Sscanf(v, "%d", &g); err == nil && fmt.Sprint(g) == v {
				continue
			}
			return fmt.Errorf("procfs option %q: gid wants a number", o)
		}
		return fmt.Errorf("procfs option %q: only hidepid= and gid= are supported", o)
	}
	return nil
}

// path returns the mount point of a procfs instance with the given
// options for the prober with the given pid, mounting it on first use;
// "" means /proc.
func (m *procMounts) path(opts string, prober int) (string, error) {
	if opts == "" {
		return "/proc", nil
	}
	data, key := opts, opts
	if ptraceable(opts) {
		key = fmt.Sprintf("%s/prober %d", opts, prober)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, ok := m.byOp[key]; ok {
		return p, nil
	}
	if err, ok := m.errs[key]; ok {
		return "", err
	}
	err := func() error {
		if err := validProcOptions(data); err != nil {
			return err
		}
		if m.dir == "" {
			d, err := os.MkdirTemp("", "procgate-oracle-proc-")
			if err != nil {
				return err
			}
			// Every spawned uid must be able to reach the mounts.
			if err := os.Chmod(d, 0o755); err != nil {
				return err
			}
			m.dir = d
		}
		p := filepath.Join(m.dir, fmt.Sprint(len(m.byOp)))
		if err := os.Mkdir(p, 0o755); err != nil {
			return err
		}
		if err := unix.Mount("proc", p, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, data); err != nil {
			return fmt.Errorf("mount procfs with %q: %w", data, err)
		}
		if m.byOp == nil {
			m.byOp = map[string]string{}
		}
		m.byOp[key] = p
		return nil
	}()
	if err != nil {
		if m.errs == nil {
			m.errs = map[string]error{}
		}
		m.errs[key] = err
		return "", err
	}
	return m.byOp[key], nil
}

func ptraceable(opts string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if o == "hidepid=ptraceable" || o == "hidepid=4" {
			return true
		}
	}
	return false
}

// close unmounts every instance and removes the mount points.
func (m *procMounts) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.byOp {
		unix.Unmount(p, unix.MNT_DETACH)
	}
	if m.dir != "" {
		os.RemoveAll(m.dir)
	}
	m.byOp, m.dir = nil, ""
}
