package oracle

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
)

// envSELinux marks a role process that has already entered its SELinux
// domain (the second half of the exec transition).
const envSELinux = "PROCGATE_ORACLE_SELINUX_ENTERED"

// selinuxMount is where selinuxfs is mounted.
const selinuxMount = "/sys/fs/selinux"

// selinuxActive reports whether SELinux is enabled here: sysfs has the
// selinuxfs mount point only then (security/selinux/selinuxfs.c).
var selinuxActive = sync.OnceValue(func() bool {
	st, err := os.Stat(selinuxMount)
	return err == nil && st.IsDir()
})

// enterSELinux moves the calling role process into ctx by an exec
// transition: it writes the context to its own thread's attr/exec and
// re-executes itself, so that every thread of the new image runs in the
// domain. It returns only on failure. Done first, while the process is
// still root with all capabilities (see enterAppArmor).
func enterSELinux(ctx string) error {
	if err := validSELinuxContext(ctx); err != nil {
		return err
	}
	if !selinuxActive() {
		return fmt.Errorf("enter selinux context %q: %w", ctx, errNoSELinux)
	}
	runtime.LockOSThread() // the exec's thread must be the one whose attr/exec is set
	var errs []error
	for _, path := range []string{"/proc/thread-self/attr/selinux/exec", "/proc/thread-self/attr/exec"} {
		err := writeAttr(path, []byte(ctx))
		if err == nil {
			env := append(os.Environ(), envSELinux+"=1")
			err = syscall.Exec("/proc/self/exe", os.Args, env)
			return fmt.Errorf("re-exec in selinux context %q: %w", ctx, err)
		}
		errs = append(errs, fmt.Errorf("write %q to %s: %w", ctx, path, err))
	}
	return fmt.Errorf("enter selinux context %q (is the policy loaded and the transition allowed?): %w", ctx, errors.Join(errs...))
}

// readSELinux returns pid's SELinux context (attr/selinux/current where
// the kernel has it, else attr/current), or "" when SELinux is not active.
func readSELinux(pid int) (string, error) {
	if !selinuxActive() {
		return "", nil
	}
	base := fmt.Sprintf("/proc/%d/attr/", pid)
	b, err := os.ReadFile(base + "selinux/current")
	if err != nil {
		b, err = os.ReadFile(base + "current")
	}
	if err != nil {
		return "", fmt.Errorf("selinux context of %d: %w", pid, err)
	}
	return strings.TrimSpace(strings.TrimRight(string(b), "\x00")), nil
}
