package proctest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// nsOptionsEnv carries a pid namespace init's NSOptions (JSON).
const nsOptionsEnv = "PROCGATE_PROCTEST_PIDNS"

// NSOptions are what a test's pid namespace holds.
type NSOptions struct {
	// Sleepers is how many processes sleep in it (sleep 600).
	Sleepers int `json:"sleepers,omitempty"`
	// Thread starts a process with a second thread in it (the helper
	// role of [Start]).
	Thread bool `json:"thread,omitempty"`
	// Nested, when set, is a pid namespace its init starts inside it.
	Nested *NSOptions `json:"nested,omitempty"`
	// LastPID, when set, makes every pid the namespace allocates once it
	// is set up greater than LastPID (its ns_last_pid), so that a pid
	// below it that is free then stays free.
	LastPID int `json:"last_pid,omitempty"`
}

// NSInfo is what a namespace's init reports: pids in the namespace's
// own numbering.
type NSInfo struct {
	// Ino is the namespace's inode number (its ns/pid link).
	Ino uint64 `json:"ino"`
	// Sleepers are the sleeping processes.
	Sleepers []int `json:"sleepers"`
	// Thread is the id of the second thread of process ThreadOf.
	Thread   int `json:"thread,omitempty"`
	ThreadOf int `json:"thread_of,omitempty"`
	// NestedInit is the pid of the nested namespace's init in this one;
	// Nested what that init reported.
	NestedInit int     `json:"nested_init,omitempty"`
	Nested     *NSInfo `json:"nested,omitempty"`
}

// PIDNS is a pid namespace of a test's own: its init is the test binary,
// re-executed with CLONE_NEWPID|CLONE_NEWNS (its TestMain must call
// [RunRoleIfRequested]), which mounts a procfs of the namespace on /proc
// of its mount namespace and starts the processes NSOptions asks for.
// The namespace, with everything in it, ends with the test.
type PIDNS struct {
	// Init is the host pid of the namespace's init (its pid 1).
	Init int
	// Info is what the init reported.
	Info NSInfo

	mu  sync.Mutex
	in  io.WriteCloser
	out *bufio.Reader
}

// StartPIDNS starts a pid namespace as o describes (the test must be
// root) and waits until everything in it runs.
func StartPIDNS(t testing.TB, o NSOptions) *PIDNS {
	t.Helper()
	b, _ := json.Marshal(o)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"=pidns", nsOptionsEnv+"="+string(b))
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	// Closing its input makes the init exit, and the kernel kill the
	// namespace.
	in, out := StartRole(t, cmd, false)
	ns := &PIDNS{Init: cmd.Process.Pid, in: in, out: out}
	line, err := ns.out.ReadBytes('\n')
	if err != nil || json.Unmarshal(line, &ns.Info) != nil {
		t.Fatalf("pid namespace init said %q: %v", line, err)
	}
	return ns
}

// Proc returns the path, from the test's mount namespace, of the
// namespace's own procfs (through its init's root): what a process in the
// namespace reads as /proc.
func (ns *PIDNS) Proc() string { return "/proc/" + strconv.Itoa(ns.Init) + "/root/proc" }

// RunSpec is a command to run inside a namespace.
type RunSpec struct {
	Path string   `json:"path"`
	Args []string `json:"args"`
	Env  []string `json:"env"`
	// UID and GID, when UID is not 0, run the command as them, with
	// Groups.
	UID    uint32   `json:"uid,omitempty"`
	GID    uint32   `json:"gid,omitempty"`
	Groups []uint32 `json:"groups,omitempty"`
	// Depth runs it that many namespaces further in (1: the nested one).
	Depth int `json:"depth,omitempty"`
}

// runReply is an init's answer to a RunSpec.
type runReply struct {
	Stdout []byte `json:"stdout"`
	Stderr string `json:"stderr"`
	Err    string `json:"err,omitempty"`
}

// Run runs spec inside the namespace, as a child of its init (or of a
// nested init), waits for it and returns its standard output. An error
// carries its standard error.
func (ns *PIDNS) Run(spec RunSpec) ([]byte, error) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	b, _ := json.Marshal(spec)
	if _, err := ns.in.Write(append(b, '\n')); err != nil {
		return nil, err
	}
	line, err := ns.out.ReadBytes('\n')
	if err != nil {
		return nil, err
	}
	var r runReply
	if err := json.Unmarshal(line, &r); err != nil {
		return nil, fmt.Errorf("pid namespace init said %q: %w", line, err)
	}
	if r.Err != "" {
		return r.Stdout, fmt.Errorf("%s: %s\n%s", spec.Path, r.Err, r.Stderr)
	}
	return r.Stdout, nil
}

// HostPID returns the pid, in the test's pid namespace, of the process
// whose own pid namespace has inode ino and which that namespace calls
// pid, found by scanning /proc (the ns/pid link and the last NSpid of
// each process).
func HostPID(t testing.TB, ino uint64, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	want := "pid:[" + strconv.FormatUint(ino, 10) + "]"
	for _, e := range ents {
		h, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink("/proc/" + e.Name() + "/ns/pid"); err != nil || l != want {
			continue
		}
		if nspid := StatusLine("/proc/"+e.Name()+"/status", "NSpid"); len(nspid) > 0 && nspid[len(nspid)-1] == strconv.Itoa(pid) {
			return h
		}
	}
	t.Fatalf("no process is pid %d of pid namespace %d", pid, ino)
	return 0
}

// StatusLine returns the fields of line key of the status file at path
// (nil when it cannot be read or has no such line).
func StatusLine(path, key string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.Fields(v)
		}
	}
	return nil
}

// held keeps the init's ends of its helpers' pipes open.
var held []io.WriteCloser

// runPIDNS is the init of a test's pid namespace: it sets the namespace
// up, reports NSInfo and runs RunSpecs from its standard input until it
// closes. It returns the exit status.
func runPIDNS() int {
	var o NSOptions
	if err := json.Unmarshal([]byte(os.Getenv(nsOptionsEnv)), &o); err != nil {
		fmt.Fprintln(os.Stderr, "pidns init:", err)
		return 2
	}
	os.Unsetenv(nsOptionsEnv)
	info, nested, err := setUpPIDNS(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pidns init:", err)
		return 2
	}
	enc := json.NewEncoder(os.Stdout)
	enc.Encode(info)
	in := bufio.NewReader(os.Stdin)
	for {
		line, err := in.ReadBytes('\n')
		if err != nil {
			return 0
		}
		var spec RunSpec
		if err := json.Unmarshal(line, &spec); err != nil {
			enc.Encode(runReply{Err: err.Error()})
			continue
		}
		if spec.Depth > 0 {
			if nested == nil {
				enc.Encode(runReply{Err: "no nested pid namespace"})
				continue
			}
			spec.Depth--
			b, _ := json.Marshal(spec)
			nested.in.Write(append(b, '\n'))
			reply, err := nested.out.ReadBytes('\n')
			if err != nil {
				enc.Encode(runReply{Err: "nested init: " + err.Error()})
				continue
			}
			os.Stdout.Write(reply)
			continue
		}
		enc.Encode(runSpec(spec))
	}
}

// setUpPIDNS mounts the namespace's procfs and starts its processes.
func setUpPIDNS(o NSOptions) (NSInfo, *PIDNS, error) {
	var info NSInfo
	if os.Getpid() != 1 {
		return info, nil, fmt.Errorf("not the init of a new pid namespace (pid %d)", os.Getpid())
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return info, nil, fmt.Errorf("make / private: %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return info, nil, fmt.Errorf("mount proc: %w", err)
	}
	l, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return info, nil, err
	}
	if _, err := fmt.Sscanf(l, "pid:[%d]", &info.Ino); err != nil {
		return info, nil, fmt.Errorf("ns/pid %q: %w", l, err)
	}
	for range o.Sleepers {
		c := exec.Command("sleep", "600")
		if err := c.Start(); err != nil {
			return info, nil, err
		}
		info.Sleepers = append(info.Sleepers, c.Process.Pid)
		go c.Wait()
	}
	if o.Thread {
		c := exec.Command(os.Args[0], "-test.run=^$")
		c.Env = append(os.Environ(), roleEnv+"=thread")
		c.Stderr = os.Stderr
		w, err := c.StdinPipe()
		if err != nil {
			return info, nil, err
		}
		held = append(held, w) // the helper runs until it closes
		out, err := c.StdoutPipe()
		if err != nil {
			return info, nil, err
		}
		if err := c.Start(); err != nil {
			return info, nil, err
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if _, serr := fmt.Sscanf(strings.TrimSpace(line), "ready %d", &info.Thread); err != nil || serr != nil {
			return info, nil, fmt.Errorf("thread helper said %q: %v %v", line, err, serr)
		}
		info.ThreadOf = c.Process.Pid
		go c.Wait()
	}
	if o.Nested == nil {
		return info, nil, lastPID(o.LastPID)
	}
	b, _ := json.Marshal(o.Nested)
	c := exec.Command(os.Args[0], "-test.run=^$")
	c.Env = append(os.Environ(), roleEnv+"=pidns", nsOptionsEnv+"="+string(b))
	c.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	c.Stderr = os.Stderr
	in, err := c.StdinPipe()
	if err != nil {
		return info, nil, err
	}
	out, err := c.StdoutPipe()
	if err != nil {
		return info, nil, err
	}
	if err := c.Start(); err != nil {
		return info, nil, err
	}
	go c.Wait()
	nested := &PIDNS{Init: c.Process.Pid, in: in, out: bufio.NewReader(out)}
	line, err := nested.out.ReadBytes('\n')
	if err != nil {
		return info, nil, fmt.Errorf("nested init: %w", err)
	}
	info.Nested = new(NSInfo)
	if err := json.Unmarshal(line, info.Nested); err != nil {
		return info, nil, fmt.Errorf("nested init said %q: %w", line, err)
	}
	info.NestedInit = c.Process.Pid
	return info, nested, lastPID(o.LastPID)
}

// lastPID sets the last pid the namespace of this process allocated
// (kernel/pid_namespace.c pid_ns_ctl_handler: the writer's namespace).
func lastPID(v int) error {
	if v <= 0 {
		return nil
	}
	return os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(v)), 0)
}

// runSpec runs one command and waits for it.
func runSpec(spec RunSpec) runReply {
	c := exec.Command(spec.Path, spec.Args...)
	c.Env = spec.Env
	if spec.UID != 0 {
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: spec.UID, Gid: spec.GID, Groups: spec.Groups}}
	}
	var stderr strings.Builder
	c.Stderr = &stderr
	out, err := c.Output()
	r := runReply{Stdout: out, Stderr: stderr.String()}
	if err != nil {
		r.Err = err.Error()
	}
	return r
}

// LastPID is the pid a namespace of the tests allocates up to when set
// up (NSOptions.LastPID): pids below it that no task of it has stay free.
const LastPID = 1000

// FreePIDs returns those of pids below LastPID that no task of the pid
// namespace whose procfs is proc has, nor will have (its next pid is
// above LastPID).
func FreePIDs(proc string, pids []int) []int {
	var out []int
	for _, p := range pids {
		if _, err := os.Stat(proc + "/" + strconv.Itoa(p)); err != nil && p < LastPID {
			out = append(out, p)
		}
	}
	return out
}
