package kernel

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
)

// Errno is the error number a caller sees, 0 when the access is allowed.
// It matches syscall.Errno values under errors.Is, so
// errors.Is(EACCES, fs.ErrPermission) holds as it does for the real errno.
//
// It is procgate's one errno table: the model returns EPERM, ENOENT,
// ESRCH, EACCES, EBADF (and EIO, EINVAL in scenario expectations); the
// enforcement points also answer with the others (a read past its
// deadline, a refused item, too many blocked reads…).
type Errno uint16

// The errno values (include/uapi/asm-generic/errno-base.h and errno.h,
// as on x86-64 and arm64).
const (
	OK        Errno = 0
	EPERM     Errno = 1
	ENOENT    Errno = 2
	ESRCH     Errno = 3
	EIO       Errno = 5
	E2BIG     Errno = 7
	EBADF     Errno = 9
	EAGAIN    Errno = 11
	ENOMEM    Errno = 12
	EACCES    Errno = 13
	EFAULT    Errno = 14
	EBUSY     Errno = 16
	EINVAL    Errno = 22
	EMFILE    Errno = 24
	ENOTSUP   Errno = 95 // EOPNOTSUPP, which Linux also spells ENOTSUP
	ETIMEDOUT Errno = 110
)

// errnoNames is the table: every errno with a symbolic name, in the
// order ParseErrno's error lists them.
var errnoNames = []struct {
	e    Errno
	name string
}{
	{EPERM, "EPERM"}, {EACCES, "EACCES"}, {ESRCH, "ESRCH"}, {ENOENT, "ENOENT"},
	{EIO, "EIO"}, {EBADF, "EBADF"}, {EINVAL, "EINVAL"},
	{E2BIG, "E2BIG"}, {EAGAIN, "EAGAIN"}, {ENOMEM, "ENOMEM"}, {EFAULT, "EFAULT"},
	{EBUSY, "EBUSY"}, {EMFILE, "EMFILE"}, {ENOTSUP, "ENOTSUP"}, {ETIMEDOUT, "ETIMEDOUT"},
}

// String returns the symbolic name ("EACCES"), "" for OK, or "E<n>" for
// a number without a name here.
func (e Errno) String() string {
	if e == OK {
		return ""
	}
	for _, n := range errnoNames {
		if n.e == e {
			return n.name
		}
	}
	return "E" + strconv.Itoa(int(e))
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
	names := make([]string, len(errnoNames))
	for i, n := range errnoNames {
		if n.name == s {
			return n.e, nil
		}
		names[i] = n.name
	}
	return 0, fmt.Errorf("unknown errno %q (known: %s)", s, strings.Join(names, ", "))
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
