package privsep

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/policy"
	"golang.org/x/sys/unix"
)

// GateConfig is what opening the gate needs: the daemon's policy,
// audit and read settings, and who the process that runs the gate
// becomes. In privilege-separated mode the front hands it to the reader,
// which opens the gate itself.
type GateConfig struct {
	Policy      string        `json:"policy"`
	AuditLog    string        `json:"audit_log"`
	AuditFormat string        `json:"audit_format"`
	AuditBurst  int           `json:"audit_burst"`
	ReadTimeout time.Duration `json:"read_timeout"`
	// AuditBudget bounds the records of decisions per second of all
	// callers together, as AuditBurst bounds one caller uid's
	// (gate.AuditConfig.Burst, Budget); 0 means no limit.
	AuditBudget int `json:"audit_budget"`
	// AuditGrants audits every item the policy grants beyond what the
	// kernel gives the caller (gate.AuditConfig.Grants).
	AuditGrants bool `json:"audit_grants"`
	// MemoryLimit is the Go memory limit (debug.SetMemoryLimit) the
	// reader applies unless GOMEMLIMIT is set; 0 leaves it alone.
	MemoryLimit int64 `json:"memory_limit"`
	// KeepPrivileges skips DropPrivileges in the reader (debugging).
	KeepPrivileges bool `json:"keep_privileges"`
	// Reader is who the process that runs the gate becomes when it drops
	// its privileges.
	Reader Creds `json:"reader"`
	// AuditFile is the audit log, opened by the daemon before any process
	// is confined ([OpenAuditLog]): the process that writes it is given
	// the descriptor and may open nothing for writing. Nil when AuditLog
	// is "" or "-".
	AuditFile *os.File `json:"-"`
	// AuditFD is AuditFile's descriptor in the reader.
	AuditFD int `json:"audit_fd,omitempty"`
	// Protect lists the daemon's other processes (the reader's front):
	// no policy grants anything on them, nor on the process that opens
	// the gate (gate.Config.Protect).
	Protect []int `json:"-"`
}

// OpenAuditLog opens the audit log at path for appending (created 0600,
// owned by the daemon's user), or returns nil for "" (none) and "-"
// (standard error).
func OpenAuditLog(path string) (*os.File, error) {
	if path == "" || path == "-" {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("audit log %s: not a regular file", path)
	}
	return f, nil
}

// AuditFormat parses the audit format name.
func AuditFormat(name string) (gate.AuditFormat, error) {
	switch name {
	case "avc", "":
		return 0, nil
	case "json":
		return gate.AuditJSON, nil
	}
	return 0, fmt.Errorf("audit format %q: want avc or json", name)
}

// LoadPolicy compiles the policy file, or the embedded default policy
// when path is "". It refuses a file that a user other than root could
// have written ([CheckPolicyFile]) and a policy without a single rule: a
// file emptied or cut short by accident is not taken for "grant
// nothing" (an explicit rule says that, e.g. `deny * * : read { … };`).
func LoadPolicy(path string) (*policy.Policy, error) {
	if path == "" {
		return policy.Default()
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := CheckPolicyFile(path, f); err != nil {
		return nil, err
	}
	src, err := io.ReadAll(io.LimitReader(f, maxPolicy+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(src) > maxPolicy {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxPolicy)
	}
	pol, err := policy.Load(path, src)
	if err != nil {
		return nil, err
	}
	if pol.NumRules() == 0 {
		return nil, fmt.Errorf("%s: the policy has no rule (an empty or truncated file?); to grant nothing beyond what the kernel allows, say so with a rule such as `deny * * : read { environ };`", path)
	}
	return pol, nil
}

// maxPolicy bounds a policy file's size.
const maxPolicy = 16 << 20

// CheckPolicyFile refuses a policy file that a user other than root
// could have written or replaced, as sshd's StrictModes does: f (the
// opened file) must be a regular file owned by root and writable by
// neither its group nor others, and every directory above it, on the
// path as given and on the path its symbolic links resolve to, must be
// owned by root and writable only by root — or carry the sticky bit (as
// /tmp does), in which only a file's owner may remove or rename it.
func CheckPolicyFile(path string, f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := secureMode(fi, false); err != nil {
		return fmt.Errorf("%s: unsafe policy file: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for _, p := range []string{abs, real} {
		for d := filepath.Dir(p); ; d = filepath.Dir(d) {
			di, err := os.Stat(d)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if err := secureMode(di, true); err != nil {
				return fmt.Errorf("%s: unsafe directory %s: %w", path, d, err)
			}
			if d == "/" {
				break
			}
		}
	}
	return nil
}

// secureMode checks that fi is owned by root and that nobody else may
// write it (a directory: or that it is sticky).
func secureMode(fi os.FileInfo, dir bool) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return errors.New("no owner information")
	}
	switch {
	case dir && !fi.IsDir():
		return errors.New("not a directory")
	case !dir && !fi.Mode().IsRegular():
		return errors.New("not a regular file")
	case st.Uid != 0:
		return fmt.Errorf("owned by uid %d, not root", st.Uid)
	case fi.Mode().Perm()&0o022 != 0 && !(dir && fi.Mode()&os.ModeSticky != 0):
		return fmt.Errorf("mode %04o: writable by a user other than root", fi.Mode().Perm())
	}
	return nil
}

// PolicyName names the policy for log messages.
func PolicyName(path string) string {
	if path == "" {
		return "(default)"
	}
	return path
}

// OpenGate loads the policy (logging its warnings), opens the audit log
// and the gate.
func OpenGate(cfg GateConfig, log *slog.Logger) (*gate.Gate, *gate.Auditor, error) {
	pol, err := LoadPolicy(cfg.Policy)
	if err != nil {
		return nil, nil, fmt.Errorf("policy: %w", err)
	}
	for _, w := range pol.Warnings() {
		log.Warn("policy", "warning", w.String())
	}
	format, err := AuditFormat(cfg.AuditFormat)
	if err != nil {
		return nil, nil, err
	}
	aud, err := gate.NewAuditor(gate.AuditConfig{
		Path: cfg.AuditLog, File: cfg.AuditFile, Format: format,
		Burst: cfg.AuditBurst, Budget: cfg.AuditBudget, Interval: time.Second, Grants: cfg.AuditGrants,
	})
	if err != nil {
		return nil, nil, err
	}
	g, err := gate.New(gate.Config{Policy: pol, Audit: aud, ReadTimeout: cfg.ReadTimeout, Protect: append(cfg.Protect, os.Getpid())})
	if err != nil {
		aud.Close()
		return nil, nil, err
	}
	return g, aud, nil
}

// Reload reopens an audit log opened by path (flushes one given as a
// descriptor), drops the model's cache and recompiles the policy; an
// invalid one leaves the last good one in force. It returns the
// generation in force, and counts the outcome in
// procgate_policy_reloads_total{result="ok"|"error"}.
func Reload(log *slog.Logger, g *gate.Gate, aud *gate.Auditor, path string) (uint64, error) {
	if err := aud.Reopen(); err != nil {
		log.Error("audit log reopen failed", "err", err)
	}
	g.FlushCache()
	pol, err := LoadPolicy(path)
	if err != nil {
		g.Metrics().Counter(`procgate_policy_reloads_total{result="error"}`).Add(1)
		log.Error("policy reload failed; the previous policy stays in force", "policy", PolicyName(path), "err", err, "generation", g.Policy().Generation())
		return g.Policy().Generation(), err
	}
	g.Metrics().Counter(`procgate_policy_reloads_total{result="ok"}`).Add(1)
	g.SetPolicy(pol)
	log.Info("policy reloaded", "policy", PolicyName(path), "generation", pol.Generation())
	return pol.Generation(), nil
}
