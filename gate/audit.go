package gate

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/procgate/procgate/policy"
)

// AuditFormat selects the audit record format.
type AuditFormat uint8

// The formats: the kernel's AVC shape (policy-language.md §6.6) or one
// JSON object per line.
const (
	AuditAVC AuditFormat = iota
	AuditJSON
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
	// result) key are written per Interval; the rest are counted and
	// summarised in one "suppressed=N" record. 0 means no rate limit.
	Burst    int
	Interval time.Duration
}

type auditKey struct {
	uid, tuid uint32
	item      Item
	granted   bool
}

// Auditor writes audit records. It buffers them and flushes every 100
// ms, on Reopen and on Close; Close loses none.
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
		k := auditKey{ev.UID, ev.TUID, ev.Item, ev.Granted}
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
	a.writeLocked(ev, 0)
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
		a.writeLocked(&AuditEvent{Time: now, Granted: k.granted, Item: k.item, UID: k.uid, TUID: k.tuid}, n)
	}
	clear(a.suppressed)
	clear(a.perKey)
}

// writeLocked formats one record; suppressed > 0 makes it a summary.
//
// Preconditions: a.mu is held.
func (a *Auditor) writeLocked(ev *AuditEvent, suppressed int) {
	a.serial++
	a.records++
	b := a.buf[:0]
	if a.cfg.Format == AuditJSON {
		rec := map[string]any{
			"time": ev.Time.UTC().Format(time.RFC3339Nano), "serial": a.serial,
			"result": result(ev.Granted), "access": access(ev.Item), "item": ev.Item.String(),
			"uid": ev.UID, "tuid": ev.TUID,
		}
		if suppressed > 0 {
			rec["suppressed"] = suppressed
		} else {
			rec["pid"], rec["comm"], rec["tpid"], rec["tcomm"] = ev.PID, ev.Comm, ev.TPID, ev.TComm
			rec["scontext"], rec["tcontext"], rec["rule"], rec["reason"] = ev.SContext, ev.TContext, ev.Rule, ev.Reason
			rec["permissive"] = 0
		}
		j, _ := json.Marshal(rec)
		b = append(append(b, j...), '\n')
	} else {
		ms := ev.Time.UnixMilli()
		b = append(b, "audit("...)
		b = strconv.AppendInt(b, ms/1000, 10)
		b = append(b, '.')
		b = append(b, byte('0'+ms%1000/100), byte('0'+ms%100/10), byte('0'+ms%10))
		b = append(b, ':')
		b = strconv.AppendUint(b, a.serial, 10)
		b = append(b, "): broker: "...)
		b = append(b, result(ev.Granted)...)
		b = append(b, " { "...)
		b = append(b, access(ev.Item)...)
		if ev.Item != policy.ItemAttach {
			b = append(b, ':')
			b = append(b, ev.Item.String()...)
		}
		b = append(b, " } for "...)
		if suppressed > 0 {
			b = append(b, "uid="...)
			b = strconv.AppendUint(b, uint64(ev.UID), 10)
			b = append(b, " tuid="...)
			b = strconv.AppendUint(b, uint64(ev.TUID), 10)
			b = append(b, " suppressed="...)
			b = strconv.AppendInt(b, int64(suppressed), 10)
		} else {
			b = appendProcess(b, false, ev.PID, ev.Comm, ev.UID, ev.SContext)
			b = append(b, ' ')
			b = appendProcess(b, true, ev.TPID, ev.TComm, ev.TUID, ev.TContext)
			b = append(b, " rule="...)
			if ev.Rule == "" {
				b = append(b, "none"...)
			} else {
				b = appendToken(b, ev.Rule)
			}
			if !ev.Granted {
				b = append(b, " permissive=0"...)
			}
		}
		b = append(b, '\n')
	}
	a.buf = b
	a.w.Write(b)
}

func result(granted bool) string {
	if granted {
		return "granted"
	}
	return "denied"
}

func access(it Item) string {
	if it.Attach() {
		return "attach"
	}
	return "read"
}

// appendProcess appends one side of a record: "pid=… comm=… uid=…" and,
// when set, "scontext=…" for the subject; "tpid=… tcomm=… tuid=…
// tcontext=…" for the target.
func appendProcess(b []byte, target bool, pid int, comm string, uid uint32, context string) []byte {
	prefix, ctx := "", " scontext="
	if target {
		prefix, ctx = "t", " tcontext="
	}
	b = append(append(b, prefix...), "pid="...)
	b = strconv.AppendInt(b, int64(pid), 10)
	b = append(append(append(b, ' '), prefix...), "comm="...)
	b = appendComm(b, comm)
	b = append(append(append(b, ' '), prefix...), "uid="...)
	b = strconv.AppendUint(b, uint64(uid), 10)
	if context != "" {
		b = append(append(b, ctx...), context...)
	}
	return b
}

// appendComm appends a command name as the kernel's audit does: quoted
// when it holds only safe characters, hex-encoded otherwise.
func appendComm(b []byte, s string) []byte {
	safe := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f || c == '"' {
			safe = false
			break
		}
	}
	if safe {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	for i := 0; i < len(s); i++ {
		b = append(b, "0123456789ABCDEF"[s[i]>>4], "0123456789ABCDEF"[s[i]&0xf])
	}
	return b
}

// appendToken appends s with spaces replaced, so a field stays one token.
func appendToken(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' || c == '\n' || c == '\t' {
			c = '_'
		}
		b = append(b, c)
	}
	return b
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
