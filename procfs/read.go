package procfs

import (
	"errors"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Gone maps the errors a vanished process produces in /proc to ESRCH: a
// /proc/<pid> directory whose process has exited (or whose pid was never
// there) answers ENOENT to every lookup.
func Gone(err error) error {
	if errors.Is(err, unix.ENOENT) {
		return unix.ESRCH
	}
	return err
}

// ReadFile reads the file name under dirfd (not following a final
// symlink) into buf, growing it up to max bytes, and returns the bytes
// read: at most max, so a longer file is cut at max.
func ReadFile(dirfd int, name string, buf []byte, max int) ([]byte, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	buf = buf[:0]
	limit := min(cap(buf), max)
	for {
		if len(buf) == limit {
			if limit >= max {
				return buf, nil // cut at max
			}
			nb := make([]byte, len(buf), min(max, 2*cap(buf)+512))
			copy(nb, buf)
			buf, limit = nb, cap(nb)
		}
		n, err := unix.Read(fd, buf[len(buf):limit])
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return nil, err
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// ReadDirNames lists the directory name under dirfd, unsorted. A
// directory of a vanished process lists as ESRCH.
func ReadDirNames(dirfd int, name string) ([]string, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, Gone(err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, Gone(err)
	}
	return names, nil
}

// ReadLink reads the link name under dirfd.
func ReadLink(dirfd int, name string) (string, error) {
	var b [unix.PathMax]byte
	n, err := unix.Readlinkat(dirfd, name, b[:])
	if err != nil {
		return "", err
	}
	return string(b[:n]), nil
}

// maxLabel bounds a security label (the kernel's attr/ files answer at
// most a page).
const maxLabel = 4096

// ReadLabel reads the security label in the attr/ file name under dirfd
// (attr/current, attr/apparmor/current, attr/smack/current), as
// [ParseLabel] returns it; "" when it cannot be read.
func ReadLabel(dirfd int, name string, buf []byte) string {
	b, err := ReadFile(dirfd, name, buf, maxLabel)
	if err != nil {
		return ""
	}
	return ParseLabel(b)
}

// ParseLabel returns a security label as the model and the policy
// compare it: without trailing newlines and NULs, and without AppArmor's
// mode suffix (" (enforce)", " (complain)", " (kill)"…), which says how
// a profile is applied, not which one it is — policy selectors match the
// profile name (docs/policy.md) and the model's AppArmor rules name
// profiles. A label without a suffix ("unconfined") is returned as is.
// The same label from SO_PEERSEC gets the same treatment.
func ParseLabel(b []byte) string {
	s := strings.TrimRight(string(b), "\n\x00")
	if i := strings.LastIndex(s, " ("); i > 0 && strings.HasSuffix(s, ")") {
		s = s[:i]
	}
	return s
}
