package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/procgate/procgate/kernel"
)

// Status is what procgate takes from one /proc/<pid>/status file.
type Status struct {
	// Name is the command name (comm), with the kernel's escapes.
	Name string
	// State is the state letter: R, S, D, T, t, X, Z, P, I.
	State byte
	// Tgid, Pid, PPid and TracerPid are ids in the pid namespace of the
	// procfs mount.
	Tgid, Pid, PPid, TracerPid int
	// UIDs and GIDs are real, effective, saved and filesystem ids, as
	// the reader's user namespace sees them.
	UIDs, GIDs [4]uint32
	// Groups are the supplementary groups.
	Groups []uint32
	// CapEff and CapPrm are the effective and permitted capability sets.
	CapEff, CapPrm uint64
	// Kthread is the Kthread: line (PF_KTHREAD); HasKthread reports
	// whether the line was present (Linux 6.0 and later print it).
	Kthread, HasKthread bool
	// HasMM reports whether the task had an address space: procfs prints
	// the Vm* lines only when get_task_mm returns one.
	HasMM bool
	// NSpid is the pid in each nested pid namespace, outermost first.
	NSpid []int
}

// ErrMalformed is wrapped by the errors of the parsers: the content is
// not what the kernel writes.
var ErrMalformed = errors.New("malformed")

// ParseStatus parses the content of a /proc/<pid>/status file. It reads
// the Name, State, Tgid, Pid, PPid, TracerPid, Uid, Gid, Groups, NSpid,
// Kthread, CapPrm and CapEff lines, and whether any Vm line is present;
// it reports an error when one of Pid, Tgid, Uid, Gid, CapPrm or CapEff is
// missing or malformed.
func ParseStatus(b []byte) (Status, error) {
	var s Status
	const (
		havePid = 1 << iota
		haveTgid
		haveUID
		haveGID
		havePrm
		haveEff
		haveAll = havePid | haveTgid | haveUID | haveGID | havePrm | haveEff
	)
	have := 0
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		key, val := line[:colon], trimSpace(line[colon+1:])
		var ok bool
		switch string(key) { // no allocation: the compiler special-cases this
		case "Name":
			s.Name = string(val)
			ok = true
		case "State":
			if len(val) > 0 {
				s.State, ok = val[0], true
			}
		case "Tgid":
			s.Tgid, ok = atoi(val)
			have |= haveTgid
		case "Pid":
			s.Pid, ok = atoi(val)
			have |= havePid
		case "PPid":
			s.PPid, ok = atoi(val)
		case "TracerPid":
			s.TracerPid, ok = atoi(val)
		case "Uid":
			ok = idQuad(val, &s.UIDs)
			have |= haveUID
		case "Gid":
			ok = idQuad(val, &s.GIDs)
			have |= haveGID
		case "Groups":
			ok = true
			for f := range fields(val) {
				g, gok := atou32(f)
				if !gok {
					ok = false
					break
				}
				s.Groups = append(s.Groups, g)
			}
		case "NSpid":
			ok = true
			for f := range fields(val) {
				p, pok := atoi(f)
				if !pok {
					ok = false
					break
				}
				s.NSpid = append(s.NSpid, p)
			}
		case "Kthread":
			s.HasKthread = true
			ok = len(val) == 1 && (val[0] == '0' || val[0] == '1')
			s.Kthread = ok && val[0] == '1'
		case "CapPrm":
			s.CapPrm, ok = hex64(val)
			have |= havePrm
		case "CapEff":
			s.CapEff, ok = hex64(val)
			have |= haveEff
		case "VmPeak", "VmSize", "VmRSS":
			s.HasMM = true
			ok = true
		default:
			ok = true
		}
		if !ok {
			return Status{}, fmt.Errorf("status line %q: %w", line, ErrMalformed)
		}
	}
	if have != haveAll {
		return Status{}, fmt.Errorf("status: Pid, Tgid, Uid, Gid, CapPrm or CapEff missing: %w", ErrMalformed)
	}
	return s, nil
}

// StatFields holds the fields procgate takes from /proc/<pid>/stat.
type StatFields struct {
	State byte
	PPid  int
	// Flags is the task's PF_* flags (field 9).
	Flags uint64
	// StartTime is field 22, in clock ticks after boot.
	StartTime uint64
}

// pfKthread is PF_KTHREAD (include/linux/sched.h).
const pfKthread = 0x00200000

// Kthread reports whether the flags have PF_KTHREAD: the task is a
// kernel thread (the status file says so itself since Linux 6.0).
func (s StatFields) Kthread() bool { return s.Flags&pfKthread != 0 }

// ParseStat parses /proc/<pid>/stat. The command name (field 2) may
// contain spaces and parentheses; parsing starts after its last ')'.
func ParseStat(b []byte) (StatFields, error) {
	var s StatFields
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return s, fmt.Errorf("stat: no command name: %w", ErrMalformed)
	}
	n := 2 // the field just consumed
	ok := true
	for f := range fields(b[i+1:]) {
		n++
		switch n {
		case 3:
			s.State = f[0]
		case 4:
			s.PPid, ok = atoi(f)
		case 9:
			s.Flags, ok = atou64(f)
		case 22:
			s.StartTime, ok = atou64(f)
		}
		if !ok {
			return s, fmt.Errorf("stat field %d %q: %w", n, f, ErrMalformed)
		}
		if n == 22 {
			return s, nil
		}
	}
	return s, fmt.Errorf("stat: %d fields, want at least 22: %w", n, ErrMalformed)
}

// ParseNSLink parses the target of a /proc/<pid>/ns/<type> link,
// "user:[4026531837]", returning the namespace's inode number.
func ParseNSLink(b []byte, typ string) (uint64, error) {
	if len(b) < len(typ)+4 || string(b[:len(typ)]) != typ || string(b[len(typ):len(typ)+2]) != ":[" || b[len(b)-1] != ']' {
		return 0, fmt.Errorf("namespace link %q: %w", b, ErrMalformed)
	}
	v, ok := atou64(b[len(typ)+2 : len(b)-1])
	if !ok {
		return 0, fmt.Errorf("namespace link %q: %w", b, ErrMalformed)
	}
	return v, nil
}

// ParseIDMap parses a uid_map or gid_map file: one "inside outside
// count" extent per line. An empty file is a namespace whose map has not
// been written; it maps nothing.
func ParseIDMap(b []byte) ([]kernel.IDExtent, error) {
	var out []kernel.IDExtent
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		if len(trimSpace(line)) == 0 {
			continue
		}
		var v [3]uint32
		n := 0
		for f := range fields(line) {
			if n == 3 {
				return nil, fmt.Errorf("id map line %q: %w", line, ErrMalformed)
			}
			x, ok := atou32(f)
			if !ok {
				return nil, fmt.Errorf("id map line %q: %w", line, ErrMalformed)
			}
			v[n] = x
			n++
		}
		if n != 3 || v[2] == 0 {
			return nil, fmt.Errorf("id map line %q: %w", line, ErrMalformed)
		}
		out = append(out, kernel.IDExtent{Inside: v[0], Outside: v[1], Count: v[2]})
	}
	return out, nil
}

// fields yields the space- or tab-separated fields of b.
func fields(b []byte) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		i := 0
		for i < len(b) {
			for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
				i++
			}
			j := i
			for j < len(b) && b[j] != ' ' && b[j] != '\t' {
				j++
			}
			if j > i && !yield(b[i:j]) {
				return
			}
			i = j
		}
	}
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\n') {
		b = b[:len(b)-1]
	}
	return b
}

func idQuad(b []byte, out *[4]uint32) bool {
	n := 0
	for f := range fields(b) {
		if n == 4 {
			return false
		}
		v, ok := atou32(f)
		if !ok {
			return false
		}
		out[n] = v
		n++
	}
	return n == 4
}

func atou64(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (^uint64(0)-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

func atou32(b []byte) (uint32, bool) {
	v, ok := atou64(b)
	if !ok || v > 1<<32-1 {
		return 0, false
	}
	return uint32(v), true
}

func atoi(b []byte) (int, bool) {
	v, ok := atou64(b)
	if !ok || v > 1<<31-1 {
		return 0, false
	}
	return int(v), true
}

func hex64(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(d)
	}
	return v, true
}

// CgroupV2Path returns the cgroup v2 path of a task, from its
// /proc/PID/cgroup file: the path of the "0::/path" line, and whether
// there is one (a v1-only system has none).
func CgroupV2Path(b string) (string, bool) {
	for line := range strings.SplitSeq(b, "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p, true
		}
	}
	return "", false
}
