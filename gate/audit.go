package gate

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/procgate/procgate/audit"
	"github.com/procgate/procgate/policy"
)

// AuditFormat selects the audit record's shape (package audit).
type AuditFormat = audit.Format

// The formats: the kernel's AVC shape (policy-language.md §6.6) or one
// JSON object per line.
const (
	AuditAVC  = audit.AVC
	AuditJSON = audit.JSON
)

// AuditEvent is one audited decision. It never carries the value read:
// no environment contents, no file contents.
type AuditEvent struct {
	Time     time.Time
	Granted  bool
	Item     Item
	PID      int
	Comm     string
	UID      uint32
	SContext string
	TPID     int
	TComm    string
	TUID     uint32
	TContext string
	Rule     string
	Reason   string
	// Generation is the generation of the policy that decided.
	Generation uint64
	// Class, when set (audit.Read or audit.Attach), makes the record one
	// of the whole access class, Item unused: procgate's BPF program
	// decides per class.
	Class string
}

// record returns the event as an audit record (without its serial).
func (ev *AuditEvent) record() audit.Record {
	access, name := ev.Item.AuditAccess()
	if ev.Class != "" {
		access, name = ev.Class, ev.Class
	}
	rule := ev.Rule
	if rule == "" {
		rule = "none"
	}
	return audit.Record{
		Time: ev.Time, Granted: ev.Granted, Access: access, Item: name,
		Subject:    audit.Process{PID: ev.PID, Comm: ev.Comm, UID: ev.UID, Context: ev.SContext},
		Target:     audit.Process{PID: ev.TPID, Comm: ev.TComm, UID: ev.TUID, Context: ev.TContext},
		Rule:       rule,
		Generation: ev.Generation, Reason: ev.Reason,
	}
}

// AuditConfig configures an Auditor.
type AuditConfig struct {
	// Path is the log file; "-" is standard error; "" disables the log
	// (records are still counted).
	Path string
	// File, when not nil, is the log file already open for appending
	// (Path then only names it): a confined process writes to the
	// descriptor it was given and opens nothing. Reopen does not reopen
	// it.
	File   *os.File
	Format AuditFormat
	// Burst is how many records of decisions one caller (subject uid)
	// may have written per Interval. Its further decisions in the
	// interval are counted, and summarised when it ends in one
	// "suppressed=N" record per result and policy generation
	// (audit.ScopeCaller). 0 means no limit per caller.
	Burst int
	// Budget is how many records of decisions all callers together may
	// have written per Interval, so that many uids (a container's subuid
	// range) cannot multiply Burst. A caller's further decisions within
	// its burst are counted, and summarised in one record per result and
	// generation (audit.ScopeAll). 0 means no budget. With both limits,
	// an interval has at most Budget records of decisions and, per policy
	// generation, 2×(Budget/Burst) summaries of callers and 2 of the
	// budget: the log's size is bounded (docs/api.md, "Audit log and
	// metrics").
	Budget   int
	Interval time.Duration
	// Writer is the records' writer (audit.Record.Writer): "" for the
	// gate, audit.TagBPF for procgate enforce's records of the BPF
	// program's denials.
	Writer string
	// Grants audits every item the policy grants beyond what the kernel
	// gives the caller directly (an item the kernel would refuse it, or
	// stat unmasked), as an auditallow rule does: what the daemon handed
	// out that the caller could not read itself. Items the kernel lets
	// the caller read are not recorded.
	Grants bool
}

// Auditor writes audit records in the one record format (package audit),
// numbered from 1. Every write(2) holds whole records. Records wait in a
// buffer until Flush — the gate flushes a chunk's records before its
// answers leave —, until the buffer is large, or at most 100 ms; Close
// loses none.
type Auditor struct {
	cfg     AuditConfig
	discard bool // no log: records are only counted

	mu         sync.Mutex
	pending    []byte // whole records, not yet handed to a write
	spare      []byte // a buffer to reuse
	serial     uint64 // the last record's serial
	tickets    uint64 // writes handed off
	window     time.Time
	written    int            // records of decisions in the window
	byCaller   map[uint32]int // the same, per caller uid (with a Burst)
	suppressed map[summaryKey]uint64
	records    uint64 // records written (summaries included)
	summaries  uint64 // summaries written
	events     uint64 // audited decisions received
	dropped    uint64 // decisions represented only in a summary
	closed     bool

	// The writes, one at a time in the order their records were
	// numbered: a write takes a ticket when it takes the records
	// (under mu) and waits for its turn (under wmu). out, f and pipe are
	// used only during a turn.
	wmu           sync.Mutex
	turn          *sync.Cond
	done          uint64        // the last ticket whose write is over
	flushed       atomic.Uint64 // the last serial handed to a write that is over
	failedThrough atomic.Uint64 // the last serial of a write that failed
	failure       atomic.Pointer[error]
	lost          atomic.Uint64 // records a failed write did not write
	out           *os.File      // nil: no log
	f             *os.File      // the log file, closed by Close
	pipe          bool          // out is not a regular file: writes of at most pipeBuf bytes

	stop chan struct{}
	quit chan struct{}
}

// summaryKey is what one summary counts.
type summaryKey struct {
	scope   audit.Scope
	uid     uint32
	granted bool
	gen     uint64
}

// NewAuditor opens the log and starts the flusher.
func NewAuditor(cfg AuditConfig) (*Auditor, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	a := &Auditor{
		cfg: cfg, discard: cfg.Path == "" && cfg.File == nil,
		byCaller: map[uint32]int{}, suppressed: map[summaryKey]uint64{}, stop: make(chan struct{}), quit: make(chan struct{}),
	}
	a.turn = sync.NewCond(&a.wmu)
	if err := a.open(); err != nil {
		return nil, err
	}
	go a.flusher()
	return a, nil
}

func (a *Auditor) flusher() {
	defer close(a.quit)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			a.mu.Lock()
			a.rollWindowLocked(time.Now())
			a.mu.Unlock()
			a.Flush()
		}
	}
}

// Record writes (or counts, when rate-limited) one audited decision.
func (a *Auditor) Record(ev *AuditEvent) { a.record(ev, nil) }

// record is Record; fill, when not nil, completes ev just before it is
// written (it is not called for a suppressed decision).
func (a *Auditor) record(ev *AuditEvent, fill func(*AuditEvent)) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	a.events++
	a.rollWindowLocked(ev.Time)
	if !a.admitLocked(ev) {
		return
	}
	if fill != nil {
		fill(ev)
	}
	r := ev.record()
	a.appendLocked(&r)
}

// admitLocked reports whether ev's record may be written in this window
// and counts it; otherwise it counts ev in its summary.
//
// Preconditions: a.mu is held.
func (a *Auditor) admitLocked(ev *AuditEvent) bool {
	if a.cfg.Burst > 0 && a.byCaller[ev.UID] >= a.cfg.Burst {
		a.suppressed[summaryKey{audit.ScopeCaller, ev.UID, ev.Granted, ev.Generation}]++
		a.dropped++
		return false
	}
	if a.cfg.Budget > 0 && a.written >= a.cfg.Budget {
		a.suppressed[summaryKey{audit.ScopeAll, 0, ev.Granted, ev.Generation}]++
		a.dropped++
		return false
	}
	a.written++
	if a.cfg.Burst > 0 {
		a.byCaller[ev.UID]++
	}
	return true
}

// rollWindowLocked starts a new rate-limit window when the current one
// is over, writing the summaries of the decisions suppressed in it.
//
// Preconditions: a.mu is held.
func (a *Auditor) rollWindowLocked(now time.Time) {
	if a.cfg.Burst == 0 && a.cfg.Budget == 0 || now.Sub(a.window) < a.cfg.Interval {
		return
	}
	a.summariesLocked(now)
	a.window = now
}

// summariesLocked writes the suppressed=N summaries, callers by uid
// first, then those of the budget, and starts counting afresh.
//
// Preconditions: a.mu is held.
func (a *Auditor) summariesLocked(now time.Time) {
	keys := make([]summaryKey, 0, len(a.suppressed))
	for k := range a.suppressed {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y summaryKey) int {
		return cmp.Or(cmp.Compare(x.scope, y.scope), cmp.Compare(x.uid, y.uid), cmp.Compare(x.gen, y.gen), boolCompare(x.granted, y.granted))
	})
	for _, k := range keys {
		a.summaries++
		a.appendLocked(&audit.Record{
			Time: now, Granted: k.granted, Scope: k.scope, Subject: audit.Process{UID: k.uid},
			Generation: k.gen, Suppressed: a.suppressed[k],
		})
	}
	clear(a.suppressed)
	clear(a.byCaller)
	a.written = 0
}

func boolCompare(x, y bool) int {
	switch {
	case x == y:
		return 0
	case x:
		return 1
	}
	return -1
}

// AuditStats are the auditor's counts.
type AuditStats struct {
	// Events is the number of audited decisions received; Records the
	// records written (summaries included), Summaries the summaries among
	// them; Suppressed the decisions represented only by a summary, so
	// that Events = Records − Summaries + Suppressed. Lost counts the
	// records a failed write left out of the log.
	Events, Records, Summaries, Suppressed, Lost uint64
}

// Stats returns the counts so far.
func (a *Auditor) Stats() AuditStats {
	if a == nil {
		return AuditStats{}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return AuditStats{Events: a.events, Records: a.records, Summaries: a.summaries, Suppressed: a.dropped, Lost: a.lost.Load()}
}

// grants reports whether every grant beyond the kernel is audited.
func (a *Auditor) grants() bool { return a != nil && a.cfg.Grants }

// auditMetric is one of the auditor's exported counts.
type auditMetric struct {
	name  string
	value func(AuditStats) uint64
}

// auditMetrics are the auditor's exported counts, for the gate's metrics
// and for procgate enforce's.
var auditMetrics = [...]auditMetric{
	{"procgate_audit_events_total", func(s AuditStats) uint64 { return s.Events }},
	{"procgate_audit_records_total", func(s AuditStats) uint64 { return s.Records }},
	{"procgate_audit_summaries_total", func(s AuditStats) uint64 { return s.Summaries }},
	{"procgate_audit_suppressed_total", func(s AuditStats) uint64 { return s.Suppressed }},
	{"procgate_audit_lost_total", func(s AuditStats) uint64 { return s.Lost }},
}

// registerAuditMetrics exports the auditor's counts.
func registerAuditMetrics(m *Metrics, a *Auditor) {
	for _, am := range auditMetrics {
		m.Gauge(am.name, func() float64 { return float64(am.value(a.Stats())) })
	}
}

// WriteAuditMetrics writes the auditor's counts in the Prometheus text
// format, as the gate's metrics carry them.
func WriteAuditMetrics(w io.Writer, a *Auditor) error {
	s := a.Stats()
	for _, am := range auditMetrics {
		if _, err := fmt.Fprintf(w, "%s %d\n", am.name, am.value(s)); err != nil {
			return err
		}
	}
	return nil
}

// beyondKernel reports whether a granted item is more than the kernel
// would give the caller directly: an item it would refuse the caller, or
// stat served unmasked where the kernel would mask it.
func beyondKernel(v *View, it Item, vd Verdict) bool {
	kd := v.Kernel[it]
	switch {
	case !kd.Allowed:
		return true
	case it == policy.ItemStatFull:
		return kd.Masked
	case it == policy.ItemStat:
		return kd.Masked && !vd.Masked
	}
	return false
}
