package kernel

import (
	"fmt"
	"syscall"
)

// Errno is the error number a caller sees, 0 when the access is allowed.
// It matches syscall.Errno values under errors.Is, so
// errors.Is(EACCES, fs.ErrPermission) holds as it does for the real errno.
type Errno uint16

// The errno values the model returns (include/uapi/asm-generic/errno-base.h).
const (
	OK     Errno = 0
	EPERM  Errno = 1
	ENOENT Errno = 2
	ESRCH  Errno = 3
	EIO    Errno = 5
	EBADF  Errno = 9
	EACCES Errno = 13
	EINVAL Errno = 22
)

var errnoNames = map[Errno]string{
	EPERM: "EPERM", ENOENT: "ENOENT", ESRCH: "ESRCH", EIO: "EIO",
	EBADF: "EBADF", EACCES: "EACCES", EINVAL: "EINVAL",
}

// String returns the symbolic name ("EACCES"), or "" for OK.
func (e Errno) String() string {
	if e == OK {
		return ""
	}
	if n, ok := errnoNames[e]; ok {
		return n
	}
	return fmt.Sprintf("errno%d", uint16(e))
}

// Error returns the symbolic name and the C library's message.
func (e Errno) Error() string {
	return e.String() + " (" + syscall.Errno(e).Error() + ")"
}

// Is reports whether target is the same error number as a syscall.Errno,
// or an error that syscall.Errno itself matches (fs.ErrPermission, …).
func (e Errno) Is(target error) bool {
	if t, ok := target.(syscall.Errno); ok {
		return uint16(t) == uint16(e)
	}
	return syscall.Errno(e).Is(target)
}

// ParseErrno parses a symbolic name such as "EACCES".
func ParseErrno(s string) (Errno, error) {
	for e, n := range errnoNames {
		if n == s {
			return e, nil
		}
	}
	return 0, fmt.Errorf("unknown errno %q (known: EPERM, EACCES, ESRCH, ENOENT, EIO, EBADF, EINVAL)", s)
}

// MarshalText encodes the symbolic name ("" for OK), as JSON reports use.
func (e Errno) MarshalText() ([]byte, error) { return []byte(e.String()), nil }

// UnmarshalText decodes a symbolic name; "" is OK.
func (e *Errno) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*e = OK
		return nil
	}
	v, err := ParseErrno(string(b))
	if err != nil {
		return err
	}
	*e = v
	return nil
}
