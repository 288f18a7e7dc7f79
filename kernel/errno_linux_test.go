package kernel_test

import (
	"errors"
	"io/fs"
	"syscall"
	"testing"

	"github.com/procgate/procgate/kernel"
)

// TestErrnoTable: every errno of the table has Linux's number, a name
// that parses back to it, and matches the real errno under errors.Is.
func TestErrnoTable(t *testing.T) {
	tests := []struct {
		e    kernel.Errno
		real syscall.Errno
		name string
	}{
		{kernel.EPERM, syscall.EPERM, "EPERM"}, {kernel.ENOENT, syscall.ENOENT, "ENOENT"},
		{kernel.ESRCH, syscall.ESRCH, "ESRCH"}, {kernel.EIO, syscall.EIO, "EIO"},
		{kernel.E2BIG, syscall.E2BIG, "E2BIG"}, {kernel.EBADF, syscall.EBADF, "EBADF"},
		{kernel.EAGAIN, syscall.EAGAIN, "EAGAIN"}, {kernel.ENOMEM, syscall.ENOMEM, "ENOMEM"},
		{kernel.EACCES, syscall.EACCES, "EACCES"}, {kernel.EFAULT, syscall.EFAULT, "EFAULT"},
		{kernel.EBUSY, syscall.EBUSY, "EBUSY"}, {kernel.EINVAL, syscall.EINVAL, "EINVAL"},
		{kernel.EMFILE, syscall.EMFILE, "EMFILE"}, {kernel.ENOTSUP, syscall.ENOTSUP, "ENOTSUP"},
		{kernel.ETIMEDOUT, syscall.ETIMEDOUT, "ETIMEDOUT"},
	}
	for _, tc := range tests {
		if uint16(tc.e) != uint16(tc.real) || tc.e.String() != tc.name || !errors.Is(tc.e, tc.real) {
			t.Errorf("%s: number %d (want %d), name %q", tc.name, tc.e, tc.real, tc.e.String())
		}
		if got, err := kernel.ParseErrno(tc.name); err != nil || got != tc.e {
			t.Errorf("ParseErrno(%q) = %v, %v", tc.name, got, err)
		}
	}
	if kernel.OK.String() != "" || kernel.Errno(77).String() != "E77" {
		t.Errorf("OK %q, 77 %q", kernel.OK.String(), kernel.Errno(77).String())
	}
	if !errors.Is(kernel.EACCES, fs.ErrPermission) {
		t.Error("EACCES is not fs.ErrPermission")
	}
	if _, err := kernel.ParseErrno("EWHAT"); err == nil {
		t.Error("ParseErrno(EWHAT) succeeded")
	}
}
