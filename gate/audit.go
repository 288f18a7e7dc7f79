package gate

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/procgate/procgate/audit"
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
}

// record returns the event as an audit record (without its serial).
func (ev *AuditEvent) record() audit.Record {
	access, name := ev.Item.AuditAccess()
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
	// Burst is how many records per (subject uid, target uid, item,
	// result, policy generation) key are written per Interval; the rest
	// are counted and summarised in one "suppressed=N" record. 0 means no
	// rate limit.
	Burst    int
	Interval time.Duration
}

type auditKey struct {
	uid, tuid uint32
	item      Item
	granted   bool
	gen       uint64
}

// Auditor writes audit records in the one record format (package audit),
// numbered from 1. It buffers them and flushes every 100 ms, on Reopen
// and on Close; Close loses none.
type Auditor struct {
	cfg AuditConfig

	mu         sync.Mutex
	f          *os.File
	w          *bufio.Writer
	buf        []byte
	serial     uint64
	window     time.Time
	perKey     map[auditKey]int
	suppressed map[auditKey]int
	records    uint64 // records written (summaries included)
	events     uint64 // audited decisions received
	dropped    uint64 // decisions represented only in a summary
	closed     bool
	stop       chan struct{}
	done       chan struct{}
}

// NewAuditor opens the log and starts the flusher.
func NewAuditor(cfg AuditConfig) (*Auditor, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	a := &Auditor{cfg: cfg, perKey: map[auditKey]int{}, suppressed: map[auditKey]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	if err := a.open(); err != nil {
		return nil, err
	}
	go a.flusher()
	return a, nil
}

func (a *Auditor) open() error {
	if a.cfg.File != nil {
		a.f = a.cfg.File
		a.w = bufio.NewWriterSize(a.f, 64<<10)
		return nil
	}
	switch a.cfg.Path {
	case "":
		a.w = bufio.NewWriterSize(io.Discard, 64<<10)
	case "-":
		a.w = bufio.NewWriterSize(os.Stderr, 64<<10)
	default:
		f, err := os.OpenFile(a.cfg.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("gate: open audit log: %w", err)
		}
		a.f = f
		a.w = bufio.NewWriterSize(f, 64<<10)
	}
	return nil
}

func (a *Auditor) flusher() {
	defer close(a.done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			a.mu.Lock()
			a.rollWindowLocked(time.Now())
			a.w.Flush()
			a.mu.Unlock()
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
	if a.cfg.Burst > 0 {
		k := auditKey{ev.UID, ev.TUID, ev.Item, ev.Granted, ev.Generation}
		if a.perKey[k] >= a.cfg.Burst {
			a.suppressed[k]++
			a.dropped++
			return
		}
		a.perKey[k]++
	}
	if fill != nil {
		fill(ev)
	}
	r := ev.record()
	a.writeLocked(&r)
}

// rollWindowLocked starts a new rate-limit window when the current one
// is over, writing one summary per key that was suppressed in it.
//
// Preconditions: a.mu is held.
func (a *Auditor) rollWindowLocked(now time.Time) {
	if a.cfg.Burst == 0 || now.Sub(a.window) < a.cfg.Interval {
		return
	}
	a.summariesLocked(now)
	a.window = now
}

// summariesLocked writes the suppressed=N summaries.
//
// Preconditions: a.mu is held.
func (a *Auditor) summariesLocked(now time.Time) {
	for k, n := range a.suppressed {
		access, name := k.item.AuditAccess()
		a.writeLocked(&audit.Record{
			Time: now, Granted: k.granted, Access: access, Item: name,
			Subject: audit.Process{UID: k.uid}, Target: audit.Process{UID: k.tuid},
			Generation: k.gen, Suppressed: uint64(n),
		})
	}
	clear(a.suppressed)
	clear(a.perKey)
}

// writeLocked numbers r and writes it.
//
// Preconditions: a.mu is held.
func (a *Auditor) writeLocked(r *audit.Record) {
	a.serial++
	a.records++
	r.Serial = a.serial
	b := a.buf[:0]
	if a.cfg.Format == AuditJSON {
		b = audit.AppendJSON(b, r)
	} else {
		b = audit.AppendAVC(b, r)
	}
	b = append(b, '\n')
	a.buf = b
	a.w.Write(b)
}

// Reopen flushes and reopens the log file (log rotation, SIGHUP); a log
// given as an open File is only flushed.
func (a *Auditor) Reopen() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.w.Flush()
	if a.f == nil || a.cfg.File != nil {
		return nil
	}
	a.f.Close()
	a.f = nil
	return a.open()
}

// Flush writes buffered records out.
func (a *Auditor) Flush() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.w.Flush()
}

// Close writes pending summaries, flushes and closes the log.
func (a *Auditor) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	a.summariesLocked(time.Now())
	err := a.w.Flush()
	if a.f != nil {
		if cerr := a.f.Close(); err == nil {
			err = cerr
		}
	}
	a.mu.Unlock()
	close(a.stop)
	<-a.done
	return err
}

// AuditStats are the auditor's counts.
type AuditStats struct {
	// Events is the number of audited decisions received; Records the
	// records written (summaries included); Suppressed the decisions
	// represented only by a summary.
	Events, Records, Suppressed uint64
}

// Stats returns the counts so far.
func (a *Auditor) Stats() AuditStats {
	if a == nil {
		return AuditStats{}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return AuditStats{Events: a.events, Records: a.records, Suppressed: a.dropped}
}
