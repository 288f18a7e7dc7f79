package gate

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/live"
	"github.com/procgate/procgate/procfs"
)

// Config configures a Gate.
type Config struct {
	// Policy is the policy to start with; required.
	Policy Policy
	// Audit receives audited decisions; nil disables audit records.
	Audit *Auditor
	// Metrics receives counters; nil allocates fresh ones.
	Metrics *Metrics
	// ReadTimeout bounds each read of a file that takes the target's
	// mmap lock (cmdline, environ, maps, smaps…); default 2s.
	ReadTimeout time.Duration
	// MaxStuckReads bounds the reads past their deadline still blocked
	// in the kernel; when reached, further mmap-lock reads are refused
	// with EBUSY. Default 64.
	MaxStuckReads int
	// Stall bounds what a target that stops answering can cost other
	// callers and other targets: reads per target and per caller uid,
	// workers per caller uid, and the breaker's back-off.
	Stall StallLimits
	// MaxValue bounds one item's value in bytes; default 4 MiB.
	MaxValue int
	// Workers bounds how many processes the gate works on at once across
	// all requests; default 4×GOMAXPROCS.
	Workers int
	// CacheTTL is how long the model's views are reused before kernel
	// settings are read again; default 10s.
	CacheTTL time.Duration
	// Live are the options for reading the model's world. Its Proc (""
	// means /proc) is also where the gate pins processes and reads the
	// procfs mount's options (Proc/self/mountinfo), and its Sys ("" means
	// /sys) where it reads the active security modules
	// (Sys/kernel/security/lsm): one root for the model and the gate.
	// Proc must be the procfs of the gate's own pid namespace, or pids
	// could not be pinned.
	Live live.Options
	// Protect lists the pids of the daemon's own processes (the gate's,
	// and the front of a privilege-separated daemon). No policy rule
	// grants anything on a protected process: a caller gets only what the
	// kernel would give it directly.
	Protect []int
}

// Gate decides and reads process state for callers: the one path shared
// by the enforcement points.
type Gate struct {
	cfg Config
	// ownMirror is the BPF rule set's mirror New mapped (not one the
	// caller gave in Config.Live).
	ownMirror io.Closer
	root      *procfs.Root
	policy    atomic.Pointer[policyBox]
	cache     *viewCache
	metrics   *Metrics
	audit     *Auditor
	sem       chan struct{}
	stuck     chan struct{}
	stall     *stalls
	shares    *workerShares
	mods      labelMods
	bufs      sync.Pool
	// hidepidOff reports that /proc has no hidepid= option, so plain
	// items are readable by every caller.
	hidepidOff bool
	// pidTranslation reports that the kernel translates pids between
	// pid namespaces (Linux 6.11); without it, callers in other pid
	// namespaces are served from tables (see callerNS).
	pidTranslation bool
}

type policyBox struct{ p Policy }

// New returns a gate using the procfs of the current pid namespace.
func New(cfg Config) (*Gate, error) {
	if cfg.Policy == nil {
		return nil, errors.New("gate: no policy")
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 2 * time.Second
	}
	if cfg.MaxStuckReads <= 0 {
		cfg.MaxStuckReads = 64
	}
	if cfg.MaxValue <= 0 {
		cfg.MaxValue = 4 << 20
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4 * runtime.GOMAXPROCS(0)
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = 10 * time.Second
	}
	cfg.Stall = cfg.Stall.withDefaults(cfg.Workers, cfg.MaxStuckReads)
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	root, err := procfs.Open(cfg.Live.Proc)
	if err != nil {
		return nil, fmt.Errorf("gate: %w", err)
	}
	if !root.Own() {
		root.Close()
		return nil, fmt.Errorf("gate: %s is not the procfs of this pid namespace (self=%q): pids cannot be pinned", root.Path(), root.Self())
	}
	var ownMirror io.Closer
	if cfg.Live.BPF == nil {
		// While the process may still open pins: the reader of procgate
		// serve is confined after this (no bpf(2), no CAP_BPF).
		m, err := live.OpenBPFMirror(cfg.Live)
		if err != nil {
			root.Close()
			return nil, fmt.Errorf("gate: %w", err)
		}
		if m != nil {
			cfg.Live.BPF, ownMirror = m, m
		}
	}
	g := &Gate{ownMirror: ownMirror,
		cfg: cfg, root: root, cache: newViewCache(cfg.CacheTTL, 1<<16),
		metrics: cfg.Metrics, audit: cfg.Audit,
		sem: make(chan struct{}, cfg.Workers), stuck: make(chan struct{}, cfg.MaxStuckReads),
		stall: newStalls(cfg.Stall, cfg.ReadTimeout), shares: newWorkerShares(cfg.Stall.WorkersPerUID),
	}
	if m := cfg.Live.BPF; m != nil {
		g.cache.stamp = m.Seq
		g.cache.stampAt = m.Seq()
	}
	g.bufs.New = func() any { b := make([]byte, 0, 8192); return &b }
	g.policy.Store(&policyBox{cfg.Policy})
	g.pidTranslation = probePIDTranslation(root)
	if _, pm, found, err := root.Mountinfo(); err == nil && found {
		g.hidepidOff = pm.Options.HidePID == kernel.HidePIDOff
	}
	lsms, _ := procfs.ReadLSMs(cfg.Live.Sys) // none readable: no labels to read
	for _, m := range lsms {
		switch m {
		case "selinux":
			g.mods.selinux = true
		case "apparmor":
			g.mods.apparmor = true
		case "smack":
			g.mods.smack = true
		}
	}
	m := g.metrics
	m.Gauge("procgate_view_cache_entries", func() float64 { return float64(g.cache.size()) })
	m.Gauge("procgate_view_cache_lookups_total", func() float64 { return float64(g.cache.hits.Load() + g.cache.misses.Load()) })
	m.Gauge("procgate_view_cache_hits_total", func() float64 { return float64(g.cache.hits.Load()) })
	m.Gauge("procgate_view_cache_misses_total", func() float64 { return float64(g.cache.misses.Load()) })
	m.Gauge("procgate_view_cache_reclaims_total", func() float64 { return float64(g.cache.evicted.Load()) })
	m.Gauge("procgate_model_reads_total", func() float64 { return float64(g.cache.reads.Load()) })
	m.Gauge("procgate_policy_generation", func() float64 { return float64(g.Policy().Generation()) })
	registerAuditMetrics(m, g.audit)
	g.stallGauges()
	return g, nil
}

// Close releases the gate's descriptors, and the mapping of the BPF
// rule set's mirror it made.
func (g *Gate) Close() error {
	err := g.root.Close()
	if g.ownMirror != nil {
		err = errors.Join(err, g.ownMirror.Close())
	}
	return err
}

// Metrics returns the gate's metrics.
func (g *Gate) Metrics() *Metrics { return g.metrics }

// Policy returns the policy in force.
func (g *Gate) Policy() Policy { return g.policy.Load().p }

// SetPolicy replaces the policy atomically: a request in progress keeps
// deciding with the policy it started with, a later one uses p. The
// model's cached views stay valid (they do not depend on the policy).
func (g *Gate) SetPolicy(p Policy) { g.policy.Store(&policyBox{p}) }

// FlushCache drops the model's cached views (kernel settings are read
// again on the next request).
func (g *Gate) FlushCache() { g.cache.flush() }

// DefaultMemoryLimit is the soft limit on the Go runtime's memory that
// procgate serve sets (debug.SetMemoryLimit, in cmd/procgate/serve.go:
// keep the two equal) unless GOMEMLIMIT is set; the broker's benchmarks
// run with it. It keeps the daemon's resident memory small on machines
// with many processes (docs/benchmarks.md, "Broker").
const DefaultMemoryLimit = 40 << 20
