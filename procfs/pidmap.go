package procfs

import (
	"bytes"
	"fmt"
	"strconv"
)

// NSIDs are a task's ids at each level of pid namespace, from the
// NStgid, NSpid, NSpgid and NSsid lines of its status file: index 0 is
// the namespace of the procfs read, the last the task's own namespace
// (fs/proc/array.c task_state prints pid->numbers[g] for g from the
// procfs's level to the task's). An id a level cannot see (a process
// group led from outside the namespace) is 0.
type NSIDs struct {
	Tgid, Pid, Pgid, Sid []int
}

// ParseNSIDs reads the NS* lines of a status file. NSpid is required
// (Linux 4.1 and later print it); the others default to empty.
func ParseNSIDs(status []byte) (NSIDs, error) {
	var ids NSIDs
	for line := range bytes.SplitSeq(status, []byte{'\n'}) {
		key, val, ok := bytes.Cut(line, []byte{':'})
		if !ok || len(key) < 4 || string(key[:2]) != "NS" {
			continue
		}
		var dst *[]int
		switch string(key) {
		case "NStgid":
			dst = &ids.Tgid
		case "NSpid":
			dst = &ids.Pid
		case "NSpgid":
			dst = &ids.Pgid
		case "NSsid":
			dst = &ids.Sid
		default:
			continue
		}
		for f := range fields(val) {
			v, ok := atoi(f)
			if !ok {
				return NSIDs{}, fmt.Errorf("status line %q: %w", line, ErrMalformed)
			}
			*dst = append(*dst, v)
		}
	}
	if len(ids.Pid) == 0 {
		return NSIDs{}, fmt.Errorf("status: no NSpid line: %w", ErrMalformed)
	}
	return ids, nil
}

// PIDMap rewrites the pids in /proc files read through the procfs of one
// pid namespace (the gate's) as a reader in a namespace Level levels
// below it would read them through a procfs of its own namespace: pids
// in its numbering, 0 for a task its namespace cannot see
// (task_pid_nr_ns), the NS* lists from its level down.
type PIDMap struct {
	// Level is how many levels below the procfs's namespace the reader's
	// namespace is; at least 1.
	Level int
	// PID maps a pid of the procfs's namespace (of a process or a
	// thread) to the reader's, 0 when the reader's namespace cannot see
	// it. It is called with positive pids only.
	PID func(int) int
}

// at returns ids[m.Level], or false when the list does not reach the
// reader's level (the task is not in the reader's namespace).
func (m PIDMap) at(ids []int) (int, bool) {
	if m.Level < 1 || len(ids) <= m.Level {
		return 0, false
	}
	return ids[m.Level], true
}

// pid maps v: its own entry at the reader's level when v is the task's
// own id at the procfs's level (own), else through m.PID; 0 stays 0.
func (m PIDMap) pid(v int, own []int) int {
	if v <= 0 {
		return v
	}
	if len(own) > m.Level && own[0] == v {
		return own[m.Level]
	}
	return m.PID(v)
}

// Status rewrites a status file (fs/proc/array.c task_state): Tgid, Pid
// and the NS* lists from the task's own lists, PPid, TracerPid and Ngid
// through m.PID. It returns the task's ids as well, and an error wrapping
// ErrMalformed when the task is not in the reader's namespace. Ngid, the
// NUMA group's leader, is printed by the kernel as a pid of the initial
// namespace whoever reads it; the gate maps it like the others, so that
// no pid of the gate's namespace leaks.
func (m PIDMap) Status(b []byte) ([]byte, NSIDs, error) {
	ids, err := ParseNSIDs(b)
	if err != nil {
		return nil, ids, err
	}
	if _, ok := m.at(ids.Pid); !ok {
		return nil, ids, fmt.Errorf("status: NSpid %v does not reach level %d: %w", ids.Pid, m.Level, ErrMalformed)
	}
	out := make([]byte, 0, len(b))
	for line := range bytes.Lines(b) {
		key, val, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			out = append(out, line...)
			continue
		}
		nl := bytes.HasSuffix(val, []byte{'\n'})
		var list []int
		one := -1
		switch string(key) {
		case "Tgid":
			one = m.pid(atoiOr(val), ids.Tgid)
		case "Pid":
			one = m.pid(atoiOr(val), ids.Pid)
		case "PPid", "TracerPid", "Ngid":
			one = m.pid(atoiOr(val), nil)
		case "NStgid":
			list = ids.Tgid
		case "NSpid":
			list = ids.Pid
		case "NSpgid":
			list = ids.Pgid
		case "NSsid":
			list = ids.Sid
		default:
			out = append(out, line...)
			continue
		}
		out = append(out, key...)
		out = append(out, ':')
		if one >= 0 {
			out = append(out, '\t')
			out = strconv.AppendInt(out, int64(one), 10)
		} else if len(list) > m.Level {
			for _, v := range list[m.Level:] {
				out = append(out, '\t')
				out = strconv.AppendInt(out, int64(v), 10)
			}
		}
		if nl {
			out = append(out, '\n')
		}
	}
	return out, ids, nil
}

// atoiOr parses a status value ("\t42\n"); a malformed one is 0.
func atoiOr(val []byte) int {
	v, _ := atoi(trimSpace(val))
	return v
}

// Stat rewrites a stat line (fs/proc/array.c do_task_stat) of the task
// whose ids are ids: pid (field 1), ppid (4), pgrp (5), session (6) and
// the terminal's foreground process group tpgid (8; -1 without a
// terminal). Its own ids come from ids when they are the ones stat
// shows; others go through m.PID.
func (m PIDMap) Stat(b []byte, ids NSIDs) ([]byte, error) {
	rp := bytes.LastIndexByte(b, ')')
	sp := bytes.IndexByte(b, ' ')
	if rp < 0 || sp <= 0 || sp > rp {
		return nil, fmt.Errorf("stat: no command name: %w", ErrMalformed)
	}
	pid, ok := atoi(b[:sp])
	if !ok {
		return nil, fmt.Errorf("stat field 1 %q: %w", b[:sp], ErrMalformed)
	}
	out := make([]byte, 0, len(b))
	out = strconv.AppendInt(out, int64(m.pid(pid, ids.Pid)), 10)
	out = append(out, b[sp:rp+1]...)
	var bad error
	out = MapStatFields(out, b[rp+1:], func(n int, f []byte) []byte {
		switch n {
		case 4, 5, 6, 8:
		default:
			return f
		}
		v, err := strconv.Atoi(string(f))
		if err != nil {
			if bad == nil {
				bad = fmt.Errorf("stat field %d %q: %w", n, f, ErrMalformed)
			}
			return f
		}
		switch n {
		case 4: // the parent: never the task itself
			v = m.pid(v, nil)
		case 5, 8: // its process group; the terminal's foreground group (-1 stays)
			v = m.pid(v, ids.Pgid)
		case 6:
			v = m.pid(v, ids.Sid)
		}
		return strconv.AppendInt(nil, int64(v), 10)
	})
	if bad != nil {
		return nil, bad
	}
	return out, nil
}

// MapStatFields appends to out the fields of a stat line after its
// command name (rest: what follows the last ')'), numbered as
// proc_pid_stat(5) numbers them (3, the state, first), each passed
// through f, with the spacing and the final newline kept.
func MapStatFields(out, rest []byte, f func(n int, field []byte) []byte) []byte {
	n := 2
	for len(rest) > 0 {
		j := 0
		for j < len(rest) && rest[j] == ' ' {
			j++
		}
		out = append(out, rest[:j]...)
		rest = rest[j:]
		k := 0
		for k < len(rest) && rest[k] != ' ' && rest[k] != '\n' {
			k++
		}
		if k == 0 {
			return append(out, rest...)
		}
		n++
		out = append(out, f(n, rest[:k])...)
		rest = rest[k:]
	}
	return out
}

// Sched rewrites the first line of a sched file (kernel/sched/debug.c
// proc_sched_show_task: "comm (pid, #threads: n)"), whose pid is the
// task's own (ids).
func (m PIDMap) Sched(b []byte, ids NSIDs) []byte {
	end := bytes.IndexByte(b, '\n')
	if end < 0 {
		end = len(b)
	}
	first := b[:end]
	t := bytes.LastIndex(first, []byte(", #threads: "))
	if t < 0 {
		return b
	}
	o := bytes.LastIndex(first[:t], []byte(" ("))
	if o < 0 {
		return b
	}
	pid, ok := atoi(first[o+2 : t])
	if !ok {
		return b
	}
	out := make([]byte, 0, len(b))
	out = append(out, b[:o+2]...)
	out = strconv.AppendInt(out, int64(m.pid(pid, ids.Pid)), 10)
	return append(out, b[t:]...)
}

// FDInfo rewrites the fdinfo of a pidfd (kernel/pid.c or fs/pidfs.c
// pidfd_show_fdinfo: "Pid:" and "NSpid:", the process's pid from the
// procfs's level down, -1 when it has exited or the procfs's namespace
// cannot see it). Other fdinfo files hold no pids and come back as they
// are.
func (m PIDMap) FDInfo(b []byte) []byte {
	if !bytes.HasPrefix(b, []byte("Pid:")) && !bytes.Contains(b, []byte("\nPid:")) {
		return b
	}
	own := -1
	var list []int
	out := make([]byte, 0, len(b))
	for line := range bytes.Lines(b) {
		key, val, _ := bytes.Cut(line, []byte{':'})
		nl := bytes.HasSuffix(line, []byte{'\n'})
		switch string(key) {
		case "Pid":
			if h, err := strconv.Atoi(string(trimSpace(val))); err == nil && h > 0 {
				if own = m.PID(h); own == 0 {
					own = -1
				}
			}
			out = append(out, "Pid:\t"...)
			out = strconv.AppendInt(out, int64(own), 10)
		case "NSpid":
			list = list[:0]
			for f := range fields(trimSpace(val)) {
				v, _ := strconv.Atoi(string(f))
				list = append(list, v)
			}
			out = append(out, "NSpid:"...)
			if own > 0 && len(list) > m.Level && list[m.Level] == own {
				for _, v := range list[m.Level:] {
					out = append(out, '\t')
					out = strconv.AppendInt(out, int64(v), 10)
				}
			} else {
				out = append(out, '\t')
				out = strconv.AppendInt(out, int64(own), 10)
			}
		default:
			out = append(out, line...)
			continue
		}
		if nl {
			out = append(out, '\n')
		}
	}
	return out
}
