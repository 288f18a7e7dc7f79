//go:build unix

package policy

import (
	"fmt"
	"os"
	"syscall"
)

func statDevIno(path string) (dev, ino uint64, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, fmt.Errorf("stat %s: no device and inode", path)
	}
	return uint64(st.Dev), uint64(st.Ino), nil // Dev is 32-bit on some platforms
}
