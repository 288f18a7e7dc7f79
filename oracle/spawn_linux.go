package oracle

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a spawned role process as the orchestrator sees it.
type proc struct {
	role  string
	creds Creds
	cmd   *exec.Cmd // nil for a target spawned by its prober (RelParent)
	stdin *os.File  // write end of the process's stdin
	out   *os.File  // read end of its stdout
	rd    *bufio.Reader
	errb  *tailBuffer
	ready readyMsg
	obs   Observed
	done  bool
}

// tailBuffer keeps the last bytes written to it (a child's stderr).
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const tailMax = 2048

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailMax {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-tailMax:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	if t == nil {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// spawnReq describes a process to start.
type spawnReq struct {
	role      string
	creds     Creds
	landlock  bool         // restrict itself
	inherited bool         // spawned inside a launcher domain
	children  []*childSpec // RelParent: the targets the prober spawns
	extra     []*os.File   // RelParent: fds 3, 4, 5, 6 … of the prober, two per child
	exitCode  int          // a target's exit status (Case.TargetExits)
	hammer    *hammerSpec  // the hammer role's paths (VM checks)
	stderr    *tailBuffer
}

func (q *spawnReq) spec() *childSpec {
	return &childSpec{Role: q.role, Creds: q.creds, Landlock: q.landlock, Inherited: q.inherited, Children: q.children, ExitCode: q.exitCode, Hammer: q.hammer}
}

// start spawns the process without waiting for it to be ready. Namespaced
// processes are created at spawn (P4): a root-made namespace through
// SysProcAttr with Credential 0/0 (P2), an owned one through the nshelper
// role running as the owner (P3).
func (r *Runner) start(q *spawnReq) (*proc, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("spawn %s: %w", q.role, err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("spawn %s: %w", q.role, err)
	}
	spec := q.spec()
	ns := q.creds.UserNS
	var cmd *exec.Cmd
	if ns.kind() == NSOwned {
		cmd, err = commandPath(r.exe, &childSpec{Role: roleNSHelper, Inner: spec}, inR, outW)
		if err == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{
				Credential: &syscall.Credential{Uid: ns.Owner, Gid: ns.OwnerGID, Groups: []uint32{}},
			}
		}
	} else {
		cmd, err = commandPath(r.exe, spec, inR, outW)
		if err == nil && ns.kind() == NSRoot {
			m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(ns.Base), Size: nsMapSize}}
			cmd.SysProcAttr = &syscall.SysProcAttr{
				Cloneflags:                 syscall.CLONE_NEWUSER,
				UidMappings:                m,
				GidMappings:                m,
				GidMappingsEnableSetgroups: true,
				Credential:                 &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{}},
			}
		}
	}
	if err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return nil, err
	}
	cmd.ExtraFiles = q.extra
	cmd.Stderr = q.stderr
	if r.cgroupFD >= 0 {
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, r.cgroupFD
	}
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("spawn %s: %w", q.role, err)
	}
	return &proc{role: q.role, creds: q.creds, cmd: cmd, stdin: inW, out: outR, rd: bufio.NewReader(outR), errb: q.stderr}, nil
}

// pipeProc makes the orchestrator's side of a target that its prober will
// spawn (RelParent), and returns the prober's ends (two of its fds from 3
// on).
func pipeProc(creds Creds, stderr *tailBuffer) (p *proc, childIn, childOut *os.File, err error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("target pipes: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, nil, nil, fmt.Errorf("target pipes: %w", err)
	}
	return &proc{role: roleTarget, creds: creds, stdin: inW, out: outR, rd: bufio.NewReader(outR), errb: stderr}, inR, outW, nil
}

// readLine reads one line within timeout.
func (p *proc) readLine(timeout time.Duration) ([]byte, error) {
	if err := p.out.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	line, err := p.rd.ReadBytes('\n')
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("no answer within %v", timeout)
		}
		if s := p.errb.String(); s != "" {
			err = fmt.Errorf("%w (stderr: %s)", err, s)
		}
		return nil, err
	}
	return line, nil
}

// awaitReady reads the ready message, then observes and verifies the
// process's credentials.
func (p *proc) awaitReady(r *Runner, timeout time.Duration) error {
	line, err := p.readLine(timeout)
	if err != nil {
		return fmt.Errorf("%s not ready: %w", p.role, err)
	}
	if err := json.Unmarshal(line, &p.ready); err != nil {
		return fmt.Errorf("%s: bad ready line %q: %w", p.role, line, err)
	}
	if p.ready.Err != "" {
		return fmt.Errorf("%s pid %d: %s", p.role, p.ready.Pid, p.ready.Err)
	}
	obs, err := observe(p.ready.Pid, r.initNS)
	if err != nil {
		return fmt.Errorf("%s: %w", p.role, err)
	}
	obs.Tid = p.ready.Tid
	obs.Dumpable = p.ready.Dumpable
	obs.Landlocked = p.ready.Landlocked
	obs.Serial = r.serial.Add(1)
	p.obs = obs
	return verify(p.role, p.creds, obs)
}

// job sends items to a prober and reads its replies.
func (p *proc) job(items []jobItem, timeout time.Duration) ([]jobReply, error) {
	b, err := json.Marshal(items)
	if err != nil {
		return nil, fmt.Errorf("encode job: %w", err)
	}
	if err := p.stdin.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("send job to prober %d: %w", p.ready.Pid, err)
	}
	line, err := p.readLine(timeout + time.Duration(len(items))*time.Second/10)
	if err != nil {
		return nil, fmt.Errorf("prober %d: %w", p.ready.Pid, err)
	}
	var reps []jobReply
	if err := json.Unmarshal(line, &reps); err != nil {
		return nil, fmt.Errorf("prober %d: bad reply: %w", p.ready.Pid, err)
	}
	return reps, nil
}

// exitToZombie makes a target exit (EOF on its stdin) and waits until it
// is a zombie: exited but not reaped, since its parent, the runner, waits
// for it only in close.
func (p *proc) exitToZombie(timeout time.Duration) error {
	if p.cmd == nil {
		return fmt.Errorf("%s %d is not the runner's child: it cannot be kept as a zombie", p.role, p.ready.Pid)
	}
	p.stdin.Close()
	path := "/proc/" + strconv.Itoa(p.ready.Pid) + "/stat"
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("%s %d after exit: %w", p.role, p.ready.Pid, err)
		}
		// "pid (comm) S ...": the state follows the last ')'.
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'Z' {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s %d is no zombie %v after its stdin closed: %s", p.role, p.ready.Pid, timeout, p.errb.String())
		}
		time.Sleep(time.Millisecond)
	}
}

// close ends the process: EOF on its stdin, then wait (kill after timeout).
func (p *proc) close(timeout time.Duration) {
	if p == nil || p.done {
		return
	}
	p.done = true
	p.stdin.Close()
	if p.cmd != nil {
		waitOrKill(p.cmd, timeout)
	}
	p.out.Close()
}

// kill ends the process at once (context cancelled).
func (p *proc) kill() {
	_ = p.out.SetReadDeadline(time.Now())
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
	}
}

// launcher is a goroutine locked to an OS thread restricted to a new
// Landlock domain, so that every process it spawns starts in that one
// domain (P5). The thread is never unlocked, so it ends with the goroutine
// and the restriction never reaches another goroutine.
type launcher struct {
	reqs chan func()
}

// newLauncher starts a launcher.
func newLauncher() (*launcher, error) {
	l := &launcher{reqs: make(chan func())}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := landlockRestrictThread(); err != nil {
			errc <- fmt.Errorf("launcher domain: %w", err)
			return
		}
		errc <- nil
		for fn := range l.reqs {
			fn()
		}
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	return l, nil
}

// do runs fn on the launcher's thread and waits for it.
func (l *launcher) do(fn func()) {
	done := make(chan struct{})
	l.reqs <- func() {
		defer close(done)
		fn()
	}
	<-done
}

// close ends the launcher's goroutine, and with it its thread.
func (l *launcher) close() { close(l.reqs) }
