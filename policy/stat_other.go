//go:build !unix

package policy

import "errors"

// statDevIno fails off Unix: no exe selector matches there.
func statDevIno(path string) (dev, ino uint64, err error) {
	return 0, 0, errors.New("stat " + path + ": device and inode not available on this system")
}
