package procfs

import (
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// ID returns an identity of the pinned process that is never reused
// while the system runs: the inode number of its pidfd, which on Linux
// 6.9 and later lives on pidfs, one inode per struct pid with a 64-bit
// number allocated once per boot (fs/pidfs.c). Unlike the pid and the
// start time (in clock ticks: two processes started within one tick
// share it), it tells a process from one that took its pid at once. It
// is 0 where pidfds are anonymous inodes, all with one number.
func (p *Pin) ID() uint64 {
	if p == nil || !pidfsIDs() {
		return 0
	}
	var st unix.Stat_t
	if unix.Fstat(p.PidFD, &st) != nil {
		return 0
	}
	return st.Ino
}

// pidfsIDs reports whether pidfds have an inode of their own per
// process (pidfs), as they do when this process's and its parent's
// differ; anonymous-inode pidfds all share one. (fstatfs's
// PID_FS_MAGIC would say the same, but a reader's seccomp filter need
// not allow fstatfs.)
var pidfsIDs = sync.OnceValue(func() bool {
	var ino [2]uint64
	for i, pid := range []int{os.Getpid(), os.Getppid()} {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			return false
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		unix.Close(fd)
		if err != nil {
			return false
		}
		ino[i] = st.Ino
	}
	return ino[0] != ino[1]
})
