package oracle

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	kcmpVM      = 1        // KCMP_VM (include/uapi/linux/kcmp.h)
	pidfdThread = 0x80     // PIDFD_THREAD (= O_EXCL), pidfd of a non-leader thread
	nsGetOwner  = 0xb704   // NS_GET_OWNER_UID = _IO(0xb7, 0x4)
	readChunk   = 4 << 10  // bytes read by the open+read probes
	dirChunk    = 16 << 10 // getdents buffer
)

// vmMarker is read from the target with process_vm_readv. Each target
// reports its address in its ready line (the binary may be
// position-independent and load at a different address in each process),
// and the orchestrator passes it on in the job.
var vmMarker = [16]byte{'p', 'r', 'o', 'c', 'g', 'a', 't', 'e', '-', 'o', 'r', 'a', 'c', 'l', 'e', 1}

// markerAddr is vmMarker's address in this process.
func markerAddr() uint64 { return uint64(uintptr(unsafe.Pointer(&vmMarker[0]))) }

// probeTarget is what a probe acts on.
type probeTarget struct {
	base   string // "/proc/PID" or "/proc/TGID/task/TID"
	id     int    // the pid or tid given to syscalls
	tid    bool   // id is a non-leader thread
	marker uint64 // vmMarker's address in the target
}

// errName renders a syscall error as its errno name.
func errName(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if n := unix.ErrnoName(errno); n != "" {
			return n
		}
		return "errno " + strconv.Itoa(int(errno))
	}
	return err.Error()
}

func answer(p Probe, err error, detail string) ProbeResult {
	if err != nil {
		return ProbeResult{Probe: p, Result: errName(err), Detail: detail}
	}
	return ProbeResult{Probe: p, Result: "ok", Detail: detail}
}

// probeItem runs the probes of one job item on the calling (locked) thread.
func probeItem(it jobItem) jobReply {
	proc := it.Proc
	if proc == "" {
		proc = "/proc"
	}
	t := probeTarget{base: proc + "/" + strconv.Itoa(it.Pid), id: it.Pid, marker: it.Marker}
	rep := jobReply{ID: it.ID, Pid: it.Pid}
	switch {
	case it.Self:
		rep.Pid = os.Getpid()
		t = probeTarget{base: proc + "/" + strconv.Itoa(rep.Pid), id: rep.Pid, marker: markerAddr()}
	case it.Thread:
		rep.Pid = os.Getpid()
		tid, err := otherThread()
		if err != nil {
			for _, p := range it.Probes {
				rep.Probes = append(rep.Probes, ProbeResult{Probe: p, Result: "error", Detail: err.Error()})
			}
			return rep
		}
		rep.Tid = tid
		t = probeTarget{base: fmt.Sprintf("%s/%d/task/%d", proc, rep.Pid, tid), id: tid, tid: true, marker: markerAddr()}
	}
	for _, p := range it.Probes {
		rep.Probes = append(rep.Probes, runProbe(p, t))
	}
	return rep
}

// otherThread returns a thread of this process other than the calling one.
func otherThread() (int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0, fmt.Errorf("list own threads: %w", err)
	}
	self := unix.Gettid()
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil && tid != self {
			return tid, nil
		}
	}
	return 0, errors.New("no other thread in this process")
}

// runProbe performs one probe and returns the kernel's answer.
func runProbe(p Probe, t probeTarget) ProbeResult {
	switch p {
	case ProbeMaps, ProbeEnviron, ProbeIO, ProbeSyscall, ProbeAuxv, ProbeFdinfo0:
		return probeRead(p, t.base+"/"+string(p))
	case ProbeMem:
		// The check is at open (fs/proc/base.c:mem_open -> proc_mem_open).
		fd, err := unix.Open(t.base+"/mem", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
		return answer(p, err, "")
	case ProbeStat:
		return probeStat(t.base + "/stat")
	case ProbeExe, ProbeCwd, ProbeRoot, ProbeFd0, ProbeNSUser:
		var buf [512]byte
		_, err := unix.Readlink(t.base+"/"+string(p), buf[:])
		return answer(p, err, "")
	case ProbeFdDir, ProbeFdinfoDir:
		return probeGetdents(p, t.base+"/"+strings.TrimSuffix(string(p), "/"))
	case ProbeVMReadv:
		return probeVMReadv(t.id, t.marker)
	case ProbeKcmp:
		// kernel/kcmp.c: SYSCALL_DEFINE5(kcmp); no x/sys wrapper.
		_, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(os.Getpid()), uintptr(t.id), kcmpVM, 0, 0, 0)
		if errno != 0 {
			return answer(p, errno, "")
		}
		return answer(p, nil, "")
	case ProbePidfdGetfd:
		return probePidfdGetfd(t)
	case ProbePtraceSeize:
		return probePtrace(t.id)
	}
	return ProbeResult{Probe: p, Result: "error", Detail: "unknown probe"}
}

// probeRead opens and reads one chunk; some entries check at open (environ,
// maps, auxv, fdinfo/N), others at read (io, syscall).
func probeRead(p Probe, path string) ProbeResult {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return answer(p, err, "open")
	}
	defer unix.Close(fd)
	var buf [readChunk]byte
	if _, err := unix.Read(fd, buf[:]); err != nil {
		return answer(p, err, "read")
	}
	return answer(p, nil, "")
}

func probeGetdents(p Probe, path string) ProbeResult {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return answer(p, err, "open")
	}
	defer unix.Close(fd)
	var buf [dirChunk]byte
	if _, err := unix.Getdents(fd, buf[:]); err != nil {
		return answer(p, err, "getdents")
	}
	return answer(p, nil, "")
}

// statFields are the /proc/PID/stat fields (1-based, as in proc(5)) that
// fs/proc/array.c:do_task_stat hides without READ_FSCREDS|NOAUDIT
// permission: startcode, endcode, startstack, kstkesp, kstkeip.
var statFields = []struct {
	n    int
	name string
}{{26, "startcode"}, {27, "endcode"}, {28, "startstack"}, {29, "kstkesp"}, {30, "kstkeip"}}

// probeStat reads /proc/PID/stat and reports whether the address fields are
// masked: startstack 0 and startcode 0 or 1 (1 when the task has an mm).
func probeStat(path string) ProbeResult {
	b, err := os.ReadFile(path)
	if err != nil {
		return answer(ProbeStat, err, "read")
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return ProbeResult{Probe: ProbeStat, Result: "error", Detail: "no ')' in stat"}
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	vals := map[string]uint64{}
	var detail []string
	for _, sf := range statFields {
		if sf.n-3 >= len(f) {
			return ProbeResult{Probe: ProbeStat, Result: "error", Detail: "short stat line"}
		}
		v, err := strconv.ParseUint(f[sf.n-3], 10, 64)
		if err != nil {
			return ProbeResult{Probe: ProbeStat, Result: "error", Detail: "bad stat field " + sf.name}
		}
		vals[sf.name] = v
		detail = append(detail, fmt.Sprintf("%s=%d", sf.name, v))
	}
	r := answer(ProbeStat, nil, strings.Join(detail, " "))
	r.Masked = vals["startstack"] == 0 && vals["startcode"] <= 1
	if len(f) > 0 && (f[0] == "Z" || f[0] == "X") {
		// A zombie has no mm: its address fields are 0 either way. Its
		// exit_code (field 52, in waitpid's form) is shown only to a
		// permitted reader, and an exited target's is not 0.
		const exitCodeField = 52
		if exitCodeField-3 >= len(f) {
			return ProbeResult{Probe: ProbeStat, Result: "error", Detail: "zombie's stat line has no exit_code"}
		}
		code, err := strconv.ParseUint(f[exitCodeField-3], 10, 64)
		if err != nil {
			return ProbeResult{Probe: ProbeStat, Result: "error", Detail: "bad stat field exit_code"}
		}
		r.Detail = fmt.Sprintf("zombie exit_code=%d", code)
		r.Masked = code == 0
	}
	return r
}

// exitedTargetStatus is the exit status of an exiting target
// (Case.TargetExits); probeStat tells a masked zombie's stat line by its
// exit_code of 0.
const exitedTargetStatus = 7

// probeVMReadv reads vmMarker from the target at the address it reported
// (mm/process_vm_access.c: process_vm_rw_core, mm_access ATTACH_REALCREDS,
// EACCES turned into EPERM). The access check comes before any page is
// touched, so the address decides only whether a permitted read returns
// the marker.
func probeVMReadv(pid int, addr uint64) ProbeResult {
	if addr == 0 {
		return ProbeResult{Probe: ProbeVMReadv, Result: "error", Detail: "the target reported no marker address"}
	}
	var got [len(vmMarker)]byte
	local := []unix.Iovec{{Base: &got[0], Len: uint64(len(got))}}
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(vmMarker)}}
	n, err := unix.ProcessVMReadv(pid, local, remote, 0)
	if err != nil {
		return answer(ProbeVMReadv, err, "")
	}
	if n != len(got) || got != vmMarker {
		return ProbeResult{Probe: ProbeVMReadv, Result: "error", Detail: fmt.Sprintf("read %d bytes at %#x but they are not the marker", n, addr)}
	}
	return answer(ProbeVMReadv, nil, "")
}

// probePidfdGetfd duplicates the target's fd 0 (kernel/pid.c:pidfd_getfd ->
// pidfd_getfd: ptrace_may_access ATTACH_REALCREDS under exec_update_lock).
func probePidfdGetfd(t probeTarget) ProbeResult {
	flags := 0
	if t.tid {
		flags = pidfdThread
	}
	pidfd, err := unix.PidfdOpen(t.id, flags)
	if err != nil {
		return answer(ProbePidfdGetfd, err, "pidfd_open")
	}
	defer unix.Close(pidfd)
	fd, err := unix.PidfdGetfd(pidfd, 0, 0)
	if err != nil {
		return answer(ProbePidfdGetfd, err, "pidfd_getfd")
	}
	unix.Close(fd)
	return answer(ProbePidfdGetfd, nil, "")
}

// probePtrace seizes the target (kernel/ptrace.c:ptrace_attach,
// __ptrace_may_access ATTACH_REALCREDS) and reports SEIZE's errno. On
// success it stops the target (PTRACE_INTERRUPT, wait4 __WALL) and detaches,
// which needs a stopped tracee (P6), so the target is left running for the
// next prober. The caller must be on a locked OS thread: the tracer is a
// thread.
func probePtrace(pid int) ProbeResult {
	if err := unix.PtraceSeize(pid); err != nil {
		return answer(ProbePtraceSeize, err, "")
	}
	var problems []string
	if err := unix.PtraceInterrupt(pid); err != nil {
		problems = append(problems, "PTRACE_INTERRUPT: "+errName(err))
	} else {
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, unix.WALL, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				problems = append(problems, "wait4: "+errName(err))
			}
			break
		}
	}
	if err := unix.PtraceDetach(pid); err != nil {
		problems = append(problems, "PTRACE_DETACH: "+errName(err))
	}
	return answer(ProbePtraceSeize, nil, strings.Join(problems, "; "))
}
