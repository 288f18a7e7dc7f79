package gate

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/procgate/procgate/audit"
)

// The Auditor's log: records wait, whole, in a buffer; a write takes
// them all and waits for its turn, so that writes reach the log in the
// order the records were numbered, each holding whole records only.

// pipeBuf is PIPE_BUF on Linux: a write of at most this many bytes to a
// pipe is never interleaved with another writer's (journald reads
// standard error through one).
const pipeBuf = 4096

// maxPending is how large the buffer grows before a write empties it.
const maxPending = 1 << 20

// open opens the log. It runs before the Auditor is shared, or during a
// turn.
func (a *Auditor) open() error {
	a.out, a.f = nil, nil
	switch {
	case a.cfg.File != nil:
		a.out, a.f = a.cfg.File, a.cfg.File
	case a.cfg.Path == "":
		return nil
	case a.cfg.Path == "-":
		a.out = os.Stderr
	default:
		f, err := os.OpenFile(a.cfg.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("gate: open audit log: %w", err)
		}
		a.out, a.f = f, f
	}
	fi, err := a.out.Stat()
	a.pipe = err != nil || !fi.Mode().IsRegular()
	return nil
}

// appendLocked numbers r and adds it to the pending records; a large
// buffer is written at once.
//
// Preconditions: a.mu is held.
func (a *Auditor) appendLocked(r *audit.Record) {
	a.serial++
	a.records++
	r.Serial = a.serial
	r.Writer = a.cfg.Writer
	if a.discard {
		a.flushed.Store(a.serial) // nothing to write
		return
	}
	if a.cfg.Format == AuditJSON {
		a.pending = audit.AppendJSON(a.pending, r)
	} else {
		a.pending = audit.AppendAVC(a.pending, r)
	}
	a.pending = append(a.pending, '\n')
	if len(a.pending) >= maxPending {
		// No turn holder waits for a.mu: waiting for the turn here is safe.
		buf, t, through := a.handOffLocked()
		a.write(buf, t, through, nil)
		a.recycleLocked(buf)
	}
}

// handOffLocked takes the pending records (possibly none, when waiting
// for the writes in progress is all there is to do) for a write, with
// its ticket and its last serial.
//
// Preconditions: a.mu is held.
func (a *Auditor) handOffLocked() (buf []byte, ticket, through uint64) {
	buf, a.pending, a.spare = a.pending, a.spare, nil
	a.tickets++
	return buf, a.tickets, a.serial
}

// write waits for the writes handed off before ticket t, writes buf and
// runs then (when not nil) while it still has the turn. through is the
// last serial in buf, or the last one handed to an earlier write.
func (a *Auditor) write(buf []byte, t, through uint64, then func()) {
	a.wmu.Lock()
	for a.done+1 != t {
		a.turn.Wait()
	}
	a.wmu.Unlock()
	if err := a.writeOut(buf); err != nil {
		a.failure.Store(&err)
		a.failedThrough.Store(through)
	}
	if then != nil {
		then()
	}
	a.flushed.Store(through)
	a.wmu.Lock()
	a.done = t
	a.turn.Broadcast()
	a.wmu.Unlock()
}

// recycleLocked keeps buf, once written, for the next records.
//
// Preconditions: a.mu is held.
func (a *Auditor) recycleLocked(buf []byte) {
	if a.spare == nil && cap(buf) <= 2*maxPending {
		a.spare = buf[:0]
	}
}

// writeOut writes whole records: buf in one write to a regular file
// (os.File.Write repeats a short write), in writes of at most pipeBuf
// bytes cut after a record otherwise (a record longer than that alone).
// It counts the records a failed write left out.
func (a *Auditor) writeOut(buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	if a.out == nil { // a reopen failed
		a.lost.Add(uint64(bytes.Count(buf, []byte{'\n'})))
		return errors.New("gate: audit log: not open")
	}
	for len(buf) > 0 {
		n := len(buf)
		if a.pipe && n > pipeBuf {
			if n = bytes.LastIndexByte(buf[:pipeBuf], '\n') + 1; n == 0 {
				n = bytes.IndexByte(buf, '\n') + 1
			}
		}
		w, err := a.out.Write(buf[:n])
		if err != nil {
			a.lost.Add(uint64(bytes.Count(buf[w:], []byte{'\n'})))
			return fmt.Errorf("gate: audit log: %w", err)
		}
		buf = buf[n:]
	}
	return nil
}

// mark returns the last record's serial: the records of decisions made
// after it have greater ones.
func (a *Auditor) mark() uint64 {
	if a == nil {
		return 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.serial
}

// flushSince writes out every record so far and waits until they are
// written; it returns an error when a record after serial mark could
// not be written.
func (a *Auditor) flushSince(mark uint64) error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	if a.flushed.Load() < a.serial {
		buf, t, through := a.handOffLocked()
		a.mu.Unlock()
		a.write(buf, t, through, nil)
		a.mu.Lock()
		a.recycleLocked(buf)
	}
	a.mu.Unlock()
	if a.failedThrough.Load() > mark {
		return *a.failure.Load()
	}
	return nil
}

// Flush writes out the records so far and waits until they are written.
// It returns an error when a record could not be written since the
// Auditor started (Stats().Lost counts them).
func (a *Auditor) Flush() error { return a.flushSince(0) }

// Reopen flushes and reopens the log file (log rotation, SIGHUP); a log
// given as an open File, or standard error, is only flushed.
func (a *Auditor) Reopen() error {
	var err error
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	buf, t, through := a.handOffLocked()
	a.mu.Unlock()
	a.write(buf, t, through, func() {
		if a.cfg.File != nil || a.f == nil {
			return
		}
		a.f.Close()
		err = a.open()
	})
	return err
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
	a.mu.Unlock()
	close(a.stop)
	<-a.quit
	var cerr error
	a.mu.Lock()
	buf, t, through := a.handOffLocked()
	a.mu.Unlock()
	a.write(buf, t, through, func() {
		if a.f != nil {
			cerr = a.f.Close()
		}
	})
	return errors.Join(a.Flush(), cerr)
}
