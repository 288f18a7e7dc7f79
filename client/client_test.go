package client

import (
	"errors"
	"io/fs"
	"syscall"
	"testing"
)

func TestItemErrorIs(t *testing.T) {
	tests := []struct {
		errno syscall.Errno
		perm  bool
	}{{syscall.EACCES, true}, {syscall.EPERM, true}, {syscall.ESRCH, false}, {syscall.ETIMEDOUT, false}}
	for _, tc := range tests {
		p := &Process{PID: 7, items: map[string]wireItem{"io": {Error: &wireError{Errno: "X", Code: int(tc.errno), Reason: "r"}}}}
		_, err := p.Text("io")
		var ie *ItemError
		if !errors.As(err, &ie) || ie.Errno != tc.errno || ie.Item != "io" {
			t.Fatalf("Text(io) error = %v, want an ItemError with %v", err, tc.errno)
		}
		if got := errors.Is(err, fs.ErrPermission); got != tc.perm {
			t.Errorf("errors.Is(%v, fs.ErrPermission) = %v, want %v", tc.errno, got, tc.perm)
		}
	}
	p := &Process{PID: 7, items: map[string]wireItem{}}
	if _, err := p.Text("environ"); !errors.Is(err, ErrNotRequested) {
		t.Errorf("unrequested item: %v", err)
	}
}
