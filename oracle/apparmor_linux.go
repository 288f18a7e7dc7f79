package oracle

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// envAppArmor marks a role process that has already entered its AppArmor
// profile (the second half of the exec transition).
const envAppArmor = "PROCGATE_ORACLE_APPARMOR_ENTERED"

// enterAppArmor moves the calling role process into profile by an exec
// transition (P10): it writes "exec <profile>" to its own thread's
// attr/apparmor/exec and re-executes itself with the same environment,
// so that every thread of the new image runs under the profile. It
// returns only on failure; the new image sees envAppArmor set and goes
// on with the role. Done first, while the process is still root with all
// capabilities, because exec would reset the credentials applied after
// it (saved and fs ids, capabilities, dumpable).
func enterAppArmor(profile string) error {
	if err := validProfileName(profile); err != nil {
		return err
	}
	runtime.LockOSThread() // the exec's thread must be the one whose attr/exec is set
	cmd := []byte("exec " + profile)
	var errs []error
	for _, path := range []string{"/proc/thread-self/attr/apparmor/exec", "/proc/thread-self/attr/exec"} {
		err := writeAttr(path, cmd)
		if err == nil {
			env := append(os.Environ(), envAppArmor+"=1")
			err = syscall.Exec("/proc/self/exe", os.Args, env)
			return fmt.Errorf("re-exec under apparmor profile %q: %w", profile, err)
		}
		errs = append(errs, fmt.Errorf("write %q to %s: %w", cmd, path, err))
	}
	return fmt.Errorf("enter apparmor profile %q (is AppArmor active and the profile loaded?): %w", profile, errors.Join(errs...))
}

// appArmorActive reports whether AppArmor is an active LSM here, so that
// observe reads the labels only where they exist.
var appArmorActive = sync.OnceValue(func() bool {
	b, err := os.ReadFile("/proc/self/attr/apparmor/current")
	return err == nil && len(strings.TrimSpace(string(b))) > 0
})

// readAppArmor returns pid's AppArmor label (attr/apparmor/current, or
// attr/current on kernels without the per-LSM directory), or "" when
// AppArmor is not active.
func readAppArmor(pid int) (string, error) {
	if !appArmorActive() {
		return "", nil
	}
	base := fmt.Sprintf("/proc/%d/attr/", pid)
	b, err := os.ReadFile(base + "apparmor/current")
	if errors.Is(err, os.ErrNotExist) {
		b, err = os.ReadFile(base + "current")
	}
	if err != nil {
		return "", fmt.Errorf("apparmor label of %d: %w", pid, err)
	}
	return strings.TrimSpace(strings.TrimRight(string(b), "\x00")), nil
}

// writeAttr writes b to a /proc attr file in one write(2), without
// O_CREAT or O_TRUNC.
func writeAttr(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// permittedCaps returns the calling thread's permitted capability set as
// its credentials hold it (/proc/thread-self/status). capget(2) is not
// used: under AppArmor it reports the set masked by the profile's
// capability rules (security/apparmor/lsm.c:apparmor_capget).
func permittedCaps() (uint64, error) {
	b, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		return 0, fmt.Errorf("read own capabilities: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "CapPrm:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, errors.New("read own capabilities: no CapPrm line in /proc/thread-self/status")
}
