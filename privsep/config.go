package privsep

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/procgate/procgate/gate"
	"github.com/procgate/procgate/policy"
)

// GateConfig is what opening the gate needs: the daemon's policy,
// audit and read settings. In privilege-separated mode the front hands
// it to the reader, which opens the gate itself.
type GateConfig struct {
	Policy      string        `json:"policy"`
	AuditLog    string        `json:"audit_log"`
	AuditFormat string        `json:"audit_format"`
	AuditBurst  int           `json:"audit_burst"`
	ReadTimeout time.Duration `json:"read_timeout"`
	// MemoryLimit is the Go memory limit (debug.SetMemoryLimit) the
	// reader applies unless GOMEMLIMIT is set; 0 leaves it alone.
	MemoryLimit int64 `json:"memory_limit"`
	// KeepPrivileges skips DropPrivileges in the reader (debugging).
	KeepPrivileges bool `json:"keep_privileges"`
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
// when path is "".
func LoadPolicy(path string) (*policy.Policy, error) {
	if path == "" {
		return policy.Default()
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return policy.Load(path, src)
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
	aud, err := gate.NewAuditor(gate.AuditConfig{Path: cfg.AuditLog, Format: format, Burst: cfg.AuditBurst, Interval: time.Second})
	if err != nil {
		return nil, nil, err
	}
	g, err := gate.New(gate.Config{Policy: pol, Audit: aud, ReadTimeout: cfg.ReadTimeout})
	if err != nil {
		aud.Close()
		return nil, nil, err
	}
	return g, aud, nil
}

// Reload reopens the audit log, drops the model's cache and recompiles
// the policy; an invalid one leaves the last good one in force. It
// returns the generation in force, and counts the outcome in
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
