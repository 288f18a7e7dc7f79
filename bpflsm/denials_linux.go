package bpflsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"structs"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/procgate/procgate/kernel/lsm/bpf"
)

// Denial is one refusal by the program, as it reports it through its ring
// buffer (ptrace.bpf.c: struct denial).
type Denial struct {
	// Generation is the rule set's that refused.
	Generation uint64
	// PID and TGID are the subject's thread and process (the caller at
	// ptrace_access_check, the parent at ptrace_traceme), TPID and TTGID
	// the target's, as the initial pid namespace numbers them.
	PID, TGID, TPID, TTGID int
	// UID and TUID are their effective uids.
	UID, TUID uint32
	Access    bpf.Access
	// Traceme says the denial was at ptrace_traceme.
	Traceme bool
	// Rule, when not 0, is the index plus one of the hashed rule that
	// refused. Otherwise SubjectClasses and TargetClasses are the general
	// classes (bpf.Layout) the two belong to, one bit each, from which
	// RuleSet.DecideClasses names the rule; SubjectClasses is 0 when a
	// protect rule refused (the program did not need the subject's).
	Rule                          uint32
	SubjectClasses, TargetClasses uint64
	// Comm and TComm are the command names.
	Comm, TComm string
}

// wireDenial is struct denial's layout.
type wireDenial struct {
	_                             structs.HostLayout
	Generation                    uint64
	PID, TGID, TPID, TTGID        uint32
	UID, TUID                     uint32
	Access, Traceme               uint8
	_                             uint16
	Rule                          uint32
	SubjectClasses, TargetClasses uint64
	Comm, TComm                   [16]byte
}

// denialSize is struct denial's size (a _Static_assert there).
const denialSize = 88

// decodeDenial reads one ring-buffer record.
func decodeDenial(b []byte) (Denial, error) {
	var w wireDenial
	if len(b) < denialSize {
		return Denial{}, fmt.Errorf("bpflsm: a denial record of %d bytes, want %d", len(b), denialSize)
	}
	if _, err := binary.Decode(b, binary.NativeEndian, &w); err != nil {
		return Denial{}, fmt.Errorf("bpflsm: denial record: %w", err)
	}
	str := func(c [16]byte) string {
		if i := bytes.IndexByte(c[:], 0); i >= 0 {
			return string(c[:i])
		}
		return string(c[:])
	}
	return Denial{
		Generation: w.Generation,
		PID:        int(w.PID), TGID: int(w.TGID), TPID: int(w.TPID), TTGID: int(w.TTGID),
		UID: w.UID, TUID: w.TUID,
		Access: bpf.Access(w.Access & 1), Traceme: w.Traceme != 0,
		Rule: w.Rule, SubjectClasses: w.SubjectClasses, TargetClasses: w.TargetClasses,
		Comm: str(w.Comm), TComm: str(w.TComm),
	}, nil
}

// Denials reads the denials of the program pinned under a directory, in
// the order the kernel made them. One reader at a time: a record read is
// gone. Denials made while the ring buffer was full are not there; the
// program counts them (Status.Lost).
type Denials struct {
	m  *ebpf.Map
	rd *ringbuf.Reader
}

// OpenDenials opens the ring buffer of the program pinned under dir.
func OpenDenials(dir string) (*Denials, error) {
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, pinDenials), nil)
	if err != nil {
		return nil, fmt.Errorf("bpflsm: the denials of %s: %w", dir, err)
	}
	rd, err := ringbuf.NewReader(m)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("bpflsm: read the denials of %s: %w", dir, err)
	}
	return &Denials{m: m, rd: rd}, nil
}

// ErrNoDenial is Read's error when its deadline passed first.
var ErrNoDenial = errors.New("bpflsm: no denial before the deadline")

// SetDeadline makes Read return ErrNoDenial once t has passed and no
// denial is waiting; the zero time waits forever.
func (d *Denials) SetDeadline(t time.Time) { d.rd.SetDeadline(t) }

// Read returns the next denial, waiting for one. After Close it returns
// an error wrapping os.ErrClosed.
func (d *Denials) Read() (Denial, error) {
	rec, err := d.rd.Read()
	if err != nil {
		if errors.Is(err, ringbuf.ErrFlushed) || errors.Is(err, os.ErrDeadlineExceeded) {
			return Denial{}, ErrNoDenial
		}
		return Denial{}, fmt.Errorf("bpflsm: read a denial: %w", err)
	}
	return decodeDenial(rec.RawSample)
}

// Close stops the reader; a Read in progress returns.
func (d *Denials) Close() error {
	return errors.Join(d.rd.Close(), d.m.Close())
}
