package oracle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// VMBroker is what init checks of the broker (procgate serve) while
// procgate's BPF program protects a process from every reader: the
// broker, started by init in the exempt cgroup, serves a root caller
// outside it what the broker's policy grants of the protected process
// (BrokerPolicy: environ and status), and refuses what it does not
// (maps), which the program refuses that caller directly too.
type VMBroker struct {
	// Items maps each item asked of the protected process to the
	// broker's answer: "ok", or the errno it refused with.
	Items map[string]string `json:"items,omitempty"`
	// Reasons are the broker's reasons for the items it refused.
	Reasons map[string]string `json:"reasons,omitempty"`
	// Exit is procgate read's exit status (1: an item was refused).
	Exit int `json:"exit"`
	// Direct counts the caller's own opens of the protected process's
	// environ and maps, and those that read.
	DirectOpens   int `json:"direct_opens"`
	DirectAllowed int `json:"direct_allowed"`
	// Free maps each item asked of a process no rule restricts
	// (BrokerFreeItems) to the broker's answer, FreeReasons its reasons
	// for refusals.
	Free        map[string]string `json:"free,omitempty"`
	FreeReasons map[string]string `json:"free_reasons,omitempty"`
	// Err is why the check could not run.
	Err string `json:"err,omitempty"`
}

// BrokerFreeItems are the items the broker check asks of a process the
// program's rule set does not restrict: not granted by BrokerPolicy, but
// given to the caller (root) by the kernel, so the broker must serve
// them. The exe link: no mm_access shortcut (6.15) answers it.
var BrokerFreeItems = []string{"exe"}

// BrokerPolicy is the broker's policy in the VM's broker check: root may
// read two items of the guarded uid's processes.
func BrokerPolicy(guarded uint32) string {
	return fmt.Sprintf(`subject root { uid 0; }
target guarded { uid %d; }
allow root guarded : read { environ status };
`, guarded)
}

// BrokerItems are the items the broker check asks, and what it must
// answer each: granted by BrokerPolicy or not.
var BrokerItems = []struct {
	Name    string
	Granted bool
}{{"environ", true}, {"status", true}, {"maps", false}}

// vmBrokerCheck starts procgate serve in init's cgroup (the exempt one)
// with BrokerPolicy, and asks it, as root in the cases' cgroup, for the
// items of the protected process pid and of the unrestricted one free. hammer opens paths directly, as
// the same kind of caller.
func (r *Runner) vmBrokerCheck(pid, free int, guarded uint32, hammer func(millis int, paths ...string) (hammerReport, error)) VMBroker {
	var res VMBroker
	fail := func(err error) VMBroker { res.Err = err.Error(); return res }
	// Not under /tmp: the broker refuses a policy in a directory others
	// may write.
	dir := "/procgate-broker"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	pol, sock := dir+"/broker.pol", dir+"/broker.sock"
	if err := os.WriteFile(pol, []byte(BrokerPolicy(guarded)), 0o644); err != nil {
		return fail(err)
	}
	// The broker's log, last lines only (tailBuffer: written by exec's
	// copying goroutine while this one reads it).
	serveErr := &tailBuffer{}
	serve := exec.Command(r.exe, "serve", "--policy", pol, "--socket", sock, "--landlock=false")
	serve.Stderr = serveErr
	if err := serve.Start(); err != nil {
		return fail(fmt.Errorf("start procgate serve: %w", err))
	}
	defer func() {
		_ = serve.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = serve.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = serve.Process.Kill()
			<-done
		}
	}()
	deadline := time.Now().Add(r.opts.Timeout)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("procgate serve made no socket in %v: %s", r.opts.Timeout, serveErr))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// ask asks the broker, as root in the cases' cgroup, for items of
	// pid: each item's answer ("ok", "empty", "missing" or the errno),
	// the reasons of the refusals, and procgate read's exit status.
	ask := func(pid int, items ...string) (map[string]string, map[string]string, int, error) {
		args := append([]string{"read", "--socket", sock, "-o", "json", strconv.Itoa(pid)}, items...)
		read := exec.Command(r.exe, args...)
		if r.cgroupFD >= 0 {
			read.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: r.cgroupFD}
		}
		var out bytes.Buffer
		errOut := &tailBuffer{}
		read.Stdout, read.Stderr = &out, errOut
		exit := 0
		if err := read.Run(); err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				return nil, nil, 0, fmt.Errorf("procgate read: %w", err)
			}
			exit = ee.ExitCode()
		}
		var answer struct {
			Items map[string]json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(out.Bytes(), &answer); err != nil {
			return nil, nil, exit, fmt.Errorf("procgate read (exit %d): %w; stderr: %s", exit, err, errOut)
		}
		got, reasons := map[string]string{}, map[string]string{}
		for _, it := range items {
			raw, ok := answer.Items[it]
			var refused struct {
				Error *struct {
					Errno  string `json:"errno"`
					Reason string `json:"reason"`
				} `json:"error"`
			}
			switch {
			case !ok:
				got[it] = "missing"
			case json.Unmarshal(raw, &refused) == nil && refused.Error != nil:
				got[it] = refused.Error.Errno
				reasons[it] = refused.Error.Reason
			case len(raw) <= 2: // "" or [] or {}: served, but empty
				got[it] = "empty"
			default:
				got[it] = "ok"
			}
		}
		return got, reasons, exit, nil
	}
	var names []string
	for _, it := range BrokerItems {
		names = append(names, it.Name)
	}
	var err error
	if res.Items, res.Reasons, res.Exit, err = ask(pid, names...); err != nil {
		return fail(err)
	}
	// What the kernel gives the caller directly, the broker gives too:
	// its reader reads the program's rule set (through its mirror) and
	// finds no rule that refuses the caller the free process's exe link
	// (no policy rule grants it).
	if res.Free, res.FreeReasons, _, err = ask(free, BrokerFreeItems...); err != nil {
		return fail(err)
	}
	rep, err := hammer(100, procPath(pid, "environ"), procPath(pid, "maps"))
	if err != nil {
		return fail(fmt.Errorf("direct reads: %w", err))
	}
	for _, c := range rep.Counts {
		res.DirectOpens += c.Opens
		res.DirectAllowed += c.Allowed
	}
	return res
}

// Check returns why the broker check failed, or nil.
func (b *VMBroker) Check() error {
	if b.Err != "" {
		return errors.New(b.Err)
	}
	var errs []error
	for _, it := range BrokerItems {
		got := b.Items[it.Name]
		if it.Granted && got != "ok" {
			errs = append(errs, fmt.Errorf("the broker did not serve %s, which its policy grants: %s", it.Name, got))
		}
		if !it.Granted && (got == "ok" || got == "empty" || got == "missing") {
			errs = append(errs, fmt.Errorf("the broker answered %s, which neither its policy nor the kernel grants the caller: %s", it.Name, got))
		}
	}
	for it, reason := range b.Reasons {
		if strings.Contains(reason, "rule set unread") {
			errs = append(errs, fmt.Errorf("the broker's reader could not read the program's rule set (%s: %s)", it, reason))
		}
	}
	for _, it := range BrokerFreeItems {
		if got := b.Free[it]; got != "ok" {
			errs = append(errs, fmt.Errorf("the broker did not serve %s of an unrestricted process, which the kernel gives the caller: %s (%s)", it, got, b.FreeReasons[it]))
		}
	}
	if b.Exit != 1 {
		errs = append(errs, fmt.Errorf("procgate read exited %d with an item refused, want 1", b.Exit))
	}
	if b.DirectOpens == 0 || b.DirectAllowed != 0 {
		errs = append(errs, fmt.Errorf("the caller's own reads of the protected process: %d of %d read, want none", b.DirectAllowed, b.DirectOpens))
	}
	return errors.Join(errs...)
}

func procPath(pid int, name string) string { return "/proc/" + strconv.Itoa(pid) + "/" + name }
