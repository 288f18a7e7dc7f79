package oracle

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Environment variables that select a role in a re-executed binary.
const (
	envRole = "PROCGATE_ORACLE_ROLE"
	envSpec = "PROCGATE_ORACLE_SPEC"
)

// Roles.
const (
	roleTarget   = "target"
	roleProber   = "prober"
	roleNSHelper = "nshelper"
	// roleHammer opens a target's /proc/PID/environ in a loop (the VM's
	// reload-under-load check) and reports the counts.
	roleHammer = "hammer"
)

// childSpec is what a re-executed role receives (JSON in envSpec).
type childSpec struct {
	Role  string `json:"role"`
	Creds Creds  `json:"creds"`
	// Landlock makes the process restrict itself (its own domain, nested
	// under any inherited one).
	Landlock bool `json:"landlock,omitempty"`
	// Inherited reports that the process is spawned inside a launcher's
	// Landlock domain (for the ready report only).
	Inherited bool `json:"inherited,omitempty"`
	// Children are, for a prober of RelParent cases, the targets it
	// spawns before applying its own credentials: the i-th on fds 3+2i
	// (its stdin) and 4+2i (its stdout).
	Children []*childSpec `json:"children,omitempty"`
	// Inner is, for the nshelper, the role to clone in the new namespace.
	Inner *childSpec `json:"inner,omitempty"`
	// Hammer is, for the hammer role, the process to open and how long.
	Hammer *hammerSpec `json:"hammer,omitempty"`
	// ExitCode is a target's exit status once its stdin reaches EOF: an
	// exiting target (Case.TargetExits) exits with a non-zero one, which
	// /proc/PID/stat shows a permitted reader of the zombie (exit_code).
	ExitCode int `json:"exit_code,omitempty"`
}

// readyMsg is the first line a role writes on stdout.
type readyMsg struct {
	Pid        int  `json:"pid"`
	Tid        int  `json:"tid"`
	Dumpable   int  `json:"dumpable"`
	Landlocked bool `json:"landlocked"`
	// Marker is the address of vmMarker in the process, which
	// process_vm_readv reads: a position-independent binary loads at a
	// different address in every process.
	Marker uint64 `json:"marker,omitempty"`
	Err    string `json:"err,omitempty"`
}

// jobItem asks a prober to probe one target.
type jobItem struct {
	ID     int     `json:"id"`
	Pid    int     `json:"pid,omitempty"`
	Self   bool    `json:"self,omitempty"`
	Thread bool    `json:"thread,omitempty"`
	Probes []Probe `json:"probes"`
	// Marker is the target's vmMarker address (its ready line's); unused
	// for Self and Thread, which read the prober's own.
	Marker uint64 `json:"marker,omitempty"`
	// Proc is the procfs mount to probe through; "" means /proc.
	Proc string `json:"proc,omitempty"`
}

// jobReply is a prober's answer for one jobItem.
type jobReply struct {
	ID     int           `json:"id"`
	Pid    int           `json:"pid"`
	Tid    int           `json:"tid,omitempty"`
	Probes []ProbeResult `json:"probes"`
}

// RunRoleIfRequested runs the oracle role this process was re-executed for,
// and exits; it returns at once when no role is requested. Call it at the
// very top of main (and of TestMain in test binaries) of every binary that
// creates a [Runner], or import package roleinit for its side effect,
// which calls it from a package initialiser: a role process then skips
// the initialisers of most packages the rest of the binary needs.
func RunRoleIfRequested() {
	role := os.Getenv(envRole)
	if role == "" {
		runVMIfPID1() // returns at once unless this is a verification VM's init
		return
	}
	var spec childSpec
	if err := json.Unmarshal([]byte(os.Getenv(envSpec)), &spec); err != nil {
		fail(fmt.Errorf("oracle %s: bad spec: %w", role, err))
	}
	if spec.Creds.AppArmor != "" && os.Getenv(envAppArmor) == "" {
		fail(fmt.Errorf("oracle %s: %w", role, enterAppArmor(spec.Creds.AppArmor)))
	}
	if spec.Creds.SELinux != "" && os.Getenv(envSELinux) == "" {
		fail(fmt.Errorf("oracle %s: %w", role, enterSELinux(spec.Creds.SELinux)))
	}
	var err error
	switch role {
	case roleTarget:
		err = runTarget(&spec)
	case roleProber:
		err = runProber(&spec)
	case roleNSHelper:
		err = runNSHelper(&spec)
	case roleHammer:
		err = runHammer(&spec)
	default:
		err = fmt.Errorf("unknown oracle role %q", role)
	}
	if err != nil {
		fail(fmt.Errorf("oracle %s: %w", role, err))
	}
	os.Exit(0)
}

// fail reports err as a ready message (the orchestrator may still be waiting
// for one) and on stderr, then exits.
func fail(err error) {
	_ = json.NewEncoder(os.Stdout).Encode(readyMsg{Pid: os.Getpid(), Err: err.Error()})
	fmt.Fprintln(os.Stderr, err)
	os.Exit(2)
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// ready applies the credentials and reports them.
func ready(spec *childSpec) error {
	if err := applyCreds(spec.Creds, spec.Landlock); err != nil {
		return err
	}
	d, _, errno := unix.RawSyscall(unix.SYS_PRCTL, unix.PR_GET_DUMPABLE, 0, 0)
	if errno != 0 {
		return fmt.Errorf("PR_GET_DUMPABLE: %w", errno)
	}
	return writeJSON(os.Stdout, readyMsg{
		Pid:        os.Getpid(),
		Tid:        unix.Gettid(),
		Dumpable:   int(d),
		Landlocked: spec.Landlock || spec.Inherited,
		Marker:     markerAddr(),
	})
}

// runTarget applies the credentials, reports ready and blocks until stdin
// reaches EOF. Targets are passive; fd 0 (the stdin pipe) is what fd/0,
// fdinfo/0 and pidfd_getfd look at.
func runTarget(spec *childSpec) error {
	if err := ready(spec); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	if spec.ExitCode != 0 {
		os.Exit(spec.ExitCode)
	}
	return nil
}

// runProber optionally spawns its target, applies its credentials on a
// locked thread (P6: the tracer is a thread), reports ready, then answers one
// JSON job line per input line with one JSON reply line.
func runProber(spec *childSpec) error {
	runtime.LockOSThread() // never unlocked: every probe runs on this thread
	// Every child's pair is close-on-exec before the first spawn: a
	// target gets its own pair as fds 0 and 1 and no other.
	for i := range spec.Children {
		syscall.CloseOnExec(3 + 2*i)
		syscall.CloseOnExec(4 + 2*i)
	}
	children := make([]*exec.Cmd, 0, len(spec.Children))
	for i, ch := range spec.Children {
		in, out := os.NewFile(uintptr(3+2*i), "target-stdin"), os.NewFile(uintptr(4+2*i), "target-stdout")
		cmd, err := command(ch, in, out)
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("spawn target %d: %w", i, err)
		}
		in.Close()
		out.Close()
		children = append(children, cmd)
	}
	if err := ready(spec); err != nil {
		return err
	}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	w := bufio.NewWriter(os.Stdout)
	for sc.Scan() {
		var items []jobItem
		if err := json.Unmarshal(sc.Bytes(), &items); err != nil {
			return fmt.Errorf("bad job: %w", err)
		}
		replies := make([]jobReply, 0, len(items))
		for _, it := range items {
			replies = append(replies, probeItem(it))
		}
		if err := writeJSON(w, replies); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	// The orchestrator closes the targets' stdin before ours.
	for _, child := range children {
		waitOrKill(child, 10*time.Second)
	}
	return sc.Err()
}

// runNSHelper runs as the namespace owner (P3) and clones the inner role
// with CLONE_NEWUSER, mapping only its own uid and gid to 0 (setgroups
// denied, as an unprivileged writer of gid_map must). The inner role
// inherits stdin and stdout and talks to the orchestrator directly.
func runNSHelper(spec *childSpec) error {
	if spec.Inner == nil {
		return fmt.Errorf("nshelper without inner role")
	}
	cmd, err := command(spec.Inner, os.Stdin, os.Stdout)
	if err != nil {
		return err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}},
		// P2: become root of the namespace before exec, so that exec
		// keeps the namespace's full capability set.
		Credential:                 &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
		GidMappingsEnableSetgroups: false,
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("clone in new user namespace as uid %d: %w", os.Geteuid(), err)
	}
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		os.Exit(ee.ExitCode())
	}
	return err
}

// command builds the re-execution of this binary (from a role) in spec's
// role.
func command(spec *childSpec, stdin, stdout *os.File) (*exec.Cmd, error) {
	return commandPath("/proc/self/exe", spec, stdin, stdout)
}

// commandPath builds the execution of exe in spec's role.
func commandPath(exe string, spec *childSpec, stdin, stdout *os.File) (*exec.Cmd, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encode %s spec: %w", spec.Role, err)
	}
	cmd := exec.Command(exe)
	cmd.Args = []string{"procgate-oracle-" + spec.Role}
	cmd.Env = []string{
		envRole + "=" + spec.Role,
		envSpec + "=" + string(b),
		"GOMAXPROCS=" + strconv.Itoa(childProcs),
		"GOGC=off",
		// Under the race detector a process sleeps a second at exit
		// (for other threads' reports); roles come and go by the
		// thousand. The variable is ignored by other builds.
		"GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"),
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, os.Stderr
	return cmd, nil
}

// childProcs is GOMAXPROCS for roles: fewer Ps mean fewer threads for
// AllThreadsSyscall to visit.
const childProcs = 1

// waitOrKill waits for cmd, killing it after timeout.
func waitOrKill(cmd *exec.Cmd, timeout time.Duration) {
	t := time.AfterFunc(timeout, func() { _ = cmd.Process.Kill() })
	_ = cmd.Wait()
	t.Stop()
}
