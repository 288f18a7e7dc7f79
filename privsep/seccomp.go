package privsep

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/sys/unix"
)

// readerSyscalls are the system calls the reader may make without
// conditions: the Go runtime's (memory, threads, signals to itself,
// timers, the network poller), reading files and links under /proc,
// pinning processes, and its socket channels. Writing (write, openat for
// writing), signals (tgkill, pidfd_send_signal), ioctl (namespace
// queries only: nsIoctls) and process_vm_readv are allowed with
// conditions (readerFilter); everything else — ptrace,
// process_vm_writev, pidfd_getfd, kcmp, get_robust_list, kill, execve,
// mount, unlink, chmod, chown, bpf, perf_event_open, setns, unshare… —
// fails with EPERM. Names an architecture lacks are left out.
var readerSyscalls = []string{
	// memory
	"mmap", "munmap", "mremap", "mprotect", "madvise", "brk", "mincore", "membarrier",
	// threads, scheduling, time
	"clone", "clone3", "exit", "exit_group", "futex", "futex_waitv", "set_robust_list", "rseq",
	"sched_yield", "sched_getaffinity", "getcpu", "nanosleep", "clock_nanosleep",
	"clock_gettime", "clock_getres", "gettimeofday", "restart_syscall",
	// signals to itself (tgkill is conditional)
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack",
	// identity and limits
	"getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getgroups",
	"getrlimit", "prlimit64", "capget", "uname", "getrandom",
	// files: read only (openat is conditional)
	"read", "readv", "pread64", "preadv", "close", "close_range", "fstat", "newfstatat", "statx",
	"lseek", "getdents64", "readlinkat", "faccessat", "faccessat2", "fcntl", "dup", "dup3",
	// the poller and the channels to the front
	"epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd2", "pipe2",
	"recvmsg", "recvfrom", "sendmsg", "sendto", "getsockopt", "getsockname", "getpeername", "shutdown",
	// pinning
	"pidfd_open",
	// Landlock's ABI version query (live.LandlockABI); a ruleset can only restrict
	"landlock_create_ruleset",
}

// ConfineReader drops the reader's privileges: it becomes to with only
// CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH ([DropPrivileges]), then
// installs its seccomp allow-list on every thread: it may write only to
// writeFDs (and to the Go runtime's poller wake-up eventfd), open files
// only for reading, signal only itself, send no signal through a pidfd
// (signal 0, the liveness check of a pin, stays allowed), read memory
// with process_vm_readv only when vmReadv (the policy has an attach
// rule), and never ptrace, write another process's memory, take its
// descriptors (pidfd_getfd), exec, mount or change a file. Refused
// system calls fail with EPERM.
func ConfineReader(to Creds, writeFDs []int, vmReadv bool) error {
	if err := DropPrivileges(to); err != nil {
		return err
	}
	return readerFilter{WriteFDs: append(writeFDs, eventFDs()...), VMReadv: vmReadv}.install()
}

// readerFilter is the reader's seccomp allow-list.
type readerFilter struct {
	// WriteFDs are the descriptors the reader may write to: standard
	// error, the audit log, the Go runtime's poller wake-up eventfd.
	WriteFDs []int
	// VMReadv allows process_vm_readv: only when the policy has an
	// attach rule (the mem item).
	VMReadv bool
}

// nsIoctls are the only ioctl requests the reader may make, all
// read-only queries on namespace files (fs/nsfs.c ns_ioctl): the gate
// serves callers in other pid namespaces (containers) by translating
// pids (NS_GET_PID_FROM_PIDNS, NS_GET_PID_IN_PIDNS, NS_GET_TGID_IN_PIDNS,
// Linux 6.11) and walks up namespaces on kernels without them
// (NS_GET_PARENT); the live model reads each user namespace's owner
// (NS_GET_OWNER_UID, live/userns.go) and parent. Every other ioctl fails
// with EPERM.
var nsIoctls = []uint64{
	unix.NS_GET_PID_FROM_PIDNS, unix.NS_GET_PID_IN_PIDNS, unix.NS_GET_TGID_IN_PIDNS, unix.NS_GET_PARENT, unix.NS_GET_OWNER_UID,
}

// oWrite are the open flags that write or create: refused.
const oWrite = unix.O_WRONLY | unix.O_RDWR | unix.O_CREAT | unix.O_TRUNC

// policy assembles the filter for the running architecture.
func (f readerFilter) policy() (seccomp.Policy, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return seccomp.Policy{}, fmt.Errorf("privsep: seccomp: %w", err)
	}
	var names []string
	for _, n := range readerSyscalls {
		if _, ok := info.SyscallNames[n]; ok {
			names = append(names, n)
		}
	}
	eq := func(arg uint32, v uint64) seccomp.Condition {
		return seccomp.Condition{Argument: arg, Operation: seccomp.Equal, Value: v}
	}
	cond := []seccomp.NameWithConditions{
		{Name: "openat", Conditions: seccomp.ArgumentConditions{{Argument: 2, Operation: seccomp.BitsNotSet, Value: oWrite}}},
		{Name: "tgkill", Conditions: seccomp.ArgumentConditions{eq(0, uint64(os.Getpid()))}},
		{Name: "pidfd_send_signal", Conditions: seccomp.ArgumentConditions{eq(1, 0)}},
	}
	for _, req := range nsIoctls {
		cond = append(cond, seccomp.NameWithConditions{Name: "ioctl", Conditions: seccomp.ArgumentConditions{eq(1, req)}})
	}
	for _, fd := range f.WriteFDs {
		cond = append(cond, seccomp.NameWithConditions{Name: "write", Conditions: seccomp.ArgumentConditions{eq(0, uint64(fd))}})
	}
	if f.VMReadv {
		names = append(names, "process_vm_readv")
	}
	return seccomp.Policy{
		DefaultAction: seccomp.ActionErrno,
		Syscalls: []seccomp.SyscallGroup{
			{Names: names, NamesWithCondtions: cond, Action: seccomp.ActionAllow},
		},
	}, nil
}

// install loads the filter on every thread of the process (TSYNC).
// no_new_privs must be set already.
func (f readerFilter) install() error {
	p, err := f.policy()
	if err != nil {
		return err
	}
	if err := seccomp.LoadFilter(seccomp.Filter{NoNewPrivs: true, Flag: seccomp.FilterFlagTSync, Policy: p}); err != nil {
		return fmt.Errorf("privsep: seccomp: %w", err)
	}
	return nil
}

// eventFDs returns this process's open eventfds: the Go runtime's
// poller wakes itself by writing to one.
func eventFDs() []int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	var fds []int
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "anon_inode:[eventfd]") {
			fds = append(fds, fd)
		}
	}
	return fds
}
