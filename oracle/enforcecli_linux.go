package oracle

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// VMEnforceCLI is the check of procgate enforce, the command, in the
// VM's bpf step: it takes over an attachment, enforces a policy file in
// the foreground, audits the denials, reloads on SIGHUP, leaves the
// program enforcing when it ends, and --detach removes it.
type VMEnforceCLI struct {
	// Generations are the policy generations --status reported: while
	// the step's rule set was attached, after the foreground enforce
	// loaded its policy file, and after SIGHUP with the file changed.
	Generations []uint64 `json:"generations"`
	// Protected*: root's opens of the guarded process's environ under
	// the first policy file (it protects that uid); AuditLines the
	// enforce audit log's denial records of that process.
	ProtectedOpens   int `json:"protected_opens"`
	ProtectedAllowed int `json:"protected_allowed"`
	AuditLines       int `json:"audit_lines"`
	// After SIGHUP the file protects the other uid instead: Released*
	// are the opens of the guarded process's environ, Swapped* those of
	// the other's.
	ReleasedOpens   int `json:"released_opens"`
	ReleasedAllowed int `json:"released_allowed"`
	SwappedOpens    int `json:"swapped_opens"`
	SwappedAllowed  int `json:"swapped_allowed"`
	// Exit is the foreground enforce's exit status after SIGTERM;
	// AfterExit* the opens of the other's environ once it ended.
	Exit             int `json:"exit"`
	AfterExitOpens   int `json:"after_exit_opens"`
	AfterExitAllowed int `json:"after_exit_allowed"`
	// Detached is --status after --detach.
	Detached string `json:"detached"`
	// Err is why the check could not run.
	Err string `json:"err,omitempty"`
}

// Check returns why the check failed, or nil.
func (c *VMEnforceCLI) Check() error {
	if c.Err != "" {
		return errors.New(c.Err)
	}
	var errs []error
	g := c.Generations
	if len(g) != 3 || g[0] == g[1] || g[1] == g[2] {
		errs = append(errs, fmt.Errorf("--status reported generations %v, want three in turn", g))
	}
	if c.ProtectedOpens == 0 || c.ProtectedAllowed != 0 {
		errs = append(errs, fmt.Errorf("under the policy file, %d of %d reads of the protected environ went through", c.ProtectedAllowed, c.ProtectedOpens))
	}
	if c.AuditLines == 0 {
		errs = append(errs, errors.New("the foreground enforce audited none of the protected process's denials"))
	}
	if c.ReleasedOpens == 0 || c.ReleasedAllowed != c.ReleasedOpens {
		errs = append(errs, fmt.Errorf("after SIGHUP released it, %d of %d reads of the environ went through", c.ReleasedAllowed, c.ReleasedOpens))
	}
	if c.SwappedOpens == 0 || c.SwappedAllowed != 0 {
		errs = append(errs, fmt.Errorf("after SIGHUP protected the other uid, %d of %d reads of its environ went through", c.SwappedAllowed, c.SwappedOpens))
	}
	if c.Exit != 0 {
		errs = append(errs, fmt.Errorf("the foreground enforce exited %d after SIGTERM", c.Exit))
	}
	if c.AfterExitOpens == 0 || c.AfterExitAllowed != 0 {
		errs = append(errs, fmt.Errorf("after enforce ended, %d of %d reads of the protected environ went through (the program must stay)", c.AfterExitAllowed, c.AfterExitOpens))
	}
	if !strings.HasPrefix(c.Detached, "not attached") {
		errs = append(errs, fmt.Errorf("--status after --detach: %q", c.Detached))
	}
	return errors.Join(errs...)
}

// vmEnforceCLIDir holds the check's policy file and audit log: not under
// /tmp (the loader refuses a policy in a directory others may write).
const vmEnforceCLIDir = "/procgate-enforce"

var statusGeneration = regexp.MustCompile(`^attached: policy generation (\d+)`)

// vmEnforceCLI runs the check with the step's rule set attached: pg is a
// process of uid guarded, pu one of uid guarded+1, and reads opens a path
// for millis as root outside the exempt cgroup, returning the opens and
// those that read.
func (r *Runner) vmEnforceCLI(pg, pu int, guarded uint32, reads func(millis int, path string) (int, int, error)) VMEnforceCLI {
	var res VMEnforceCLI
	fail := func(err error) VMEnforceCLI { res.Err = err.Error(); return res }
	status := func() (string, error) {
		out, err := exec.Command(r.exe, "enforce", "--status").CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("procgate enforce --status: %w: %s", err, out)
		}
		return strings.TrimSpace(string(out)), nil
	}
	generation := func() (uint64, error) {
		out, err := status()
		if err != nil {
			return 0, err
		}
		m := statusGeneration.FindStringSubmatch(out)
		if m == nil {
			return 0, fmt.Errorf("procgate enforce --status: %q", out)
		}
		return strconv.ParseUint(m[1], 10, 64)
	}
	// awaitGeneration polls --status until the generation is not old.
	awaitGeneration := func(old uint64) error {
		deadline := time.Now().Add(r.opts.Timeout)
		for {
			g, err := generation()
			if err == nil && g != old {
				res.Generations = append(res.Generations, g)
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("--status still at generation %d after %v (%v)", old, r.opts.Timeout, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	g0, err := generation()
	if err != nil {
		return fail(err)
	}
	res.Generations = append(res.Generations, g0)
	if err := os.MkdirAll(vmEnforceCLIDir, 0o755); err != nil {
		return fail(err)
	}
	defer os.RemoveAll(vmEnforceCLIDir)
	pol, auditLog := vmEnforceCLIDir+"/enforce.pol", vmEnforceCLIDir+"/audit.log"
	protect := func(uid uint32) error {
		tmp := pol + ".new"
		src := fmt.Sprintf("target guarded { uid %d; }\nprotect guarded : read;\n", uid)
		if err := os.WriteFile(tmp, []byte(src), 0o644); err != nil {
			return err
		}
		return os.Rename(tmp, pol)
	}
	if err := protect(guarded); err != nil {
		return fail(err)
	}
	// In init's cgroup, the exempt one, as a service would run it.
	enforce := exec.Command(r.exe, "enforce", "--policy", pol, "--audit-log", auditLog, "--exempt-cgroup", vmInitCgroup)
	stderr := &tailBuffer{}
	enforce.Stderr = stderr
	if err := enforce.Start(); err != nil {
		return fail(fmt.Errorf("start procgate enforce: %w", err))
	}
	ended := false
	defer func() {
		if !ended {
			_ = enforce.Process.Kill()
			_ = enforce.Wait()
		}
	}()
	if err := awaitGeneration(g0); err != nil {
		return fail(fmt.Errorf("%w; enforce: %s", err, stderr))
	}
	if res.ProtectedOpens, res.ProtectedAllowed, err = reads(200, procPath(pg, "environ")); err != nil {
		return fail(err)
	}
	// The foreground enforce audits the denials it reads from the ring
	// buffer: wait for a record of the protected process.
	mark := "tpid=" + strconv.Itoa(pg) + " "
	for deadline := time.Now().Add(r.opts.Timeout); res.AuditLines == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(auditLog)
		for line := range bytes.Lines(b) {
			if bytes.Contains(line, []byte("bpf:")) && bytes.Contains(line, []byte(mark)) {
				res.AuditLines++
			}
		}
	}
	if err := protect(guarded + 1); err != nil {
		return fail(err)
	}
	if err := enforce.Process.Signal(syscall.SIGHUP); err != nil {
		return fail(err)
	}
	if err := awaitGeneration(res.Generations[1]); err != nil {
		return fail(fmt.Errorf("after SIGHUP: %w; enforce: %s", err, stderr))
	}
	if res.ReleasedOpens, res.ReleasedAllowed, err = reads(100, procPath(pg, "environ")); err != nil {
		return fail(err)
	}
	if res.SwappedOpens, res.SwappedAllowed, err = reads(100, procPath(pu, "environ")); err != nil {
		return fail(err)
	}
	if err := enforce.Process.Signal(syscall.SIGTERM); err != nil {
		return fail(err)
	}
	ended = true
	if err := enforce.Wait(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return fail(err)
		}
		res.Exit = ee.ExitCode()
	}
	if res.AfterExitOpens, res.AfterExitAllowed, err = reads(100, procPath(pu, "environ")); err != nil {
		return fail(err)
	}
	if out, err := exec.Command(r.exe, "enforce", "--detach").CombinedOutput(); err != nil {
		return fail(fmt.Errorf("procgate enforce --detach: %w: %s", err, out))
	}
	if res.Detached, err = status(); err != nil {
		return fail(err)
	}
	return res
}
