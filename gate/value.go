package gate

import (
	"encoding/base64"
	"errors"
	"strconv"
	"syscall"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/kernel"
)

// Denial is why an item (or a whole process) was not answered: an
// errno-like code, as the caller would have met it reading the file
// itself, and a reason in words.
type Denial struct {
	Errno  syscall.Errno
	Reason string
}

// Error returns "EACCES: reason".
func (d *Denial) Error() string { return errnoName(d.Errno) + ": " + d.Reason }

// errnoName returns the symbolic name of e ("EACCES", "E<n>" for a
// number without one), from the one errno table (kernel.Errno).
func errnoName(e syscall.Errno) string { return kernel.Errno(e).String() }

// Unwrap returns the errno, so errors.Is(d, fs.ErrPermission) holds for
// EACCES and EPERM.
func (d *Denial) Unwrap() error { return d.Errno }

// denialOf turns an error into a Denial, keeping its errno (EIO when it
// has none).
func denialOf(err error) *Denial {
	var e syscall.Errno
	if !errors.As(err, &e) {
		e = unix.EIO
	}
	return &Denial{Errno: e, Reason: err.Error()}
}

// Link is one entry of a directory of links (fd/, ns/, map_files/) or of
// fdinfo/: its name and the link target (or the file's text).
type Link struct {
	Name, Target string
}

// MemRange is a range of the target's address space to read.
type MemRange struct {
	Addr uint64 `json:"addr"`
	Len  uint64 `json:"len"`
}

// MemChunk is the data read from one MemRange (possibly short).
type MemChunk struct {
	Addr uint64
	Data []byte
}

// valueKind says which field of an ItemResult holds the value.
type valueKind uint8

const (
	valueNone valueKind = iota
	valueText
	valueList
	valueCount
	valueLinks
	valueMem
	valueBool
)

// ItemResult is the answer for one item: a value or a denial.
type ItemResult struct {
	Item Item
	// Denial is set when the item is not answered.
	Denial *Denial
	// Masked is set for stat served with the [PT] fields zeroed.
	Masked bool

	kind  valueKind
	Text  string     // text files, links
	List  []string   // cmdline, environ
	Count int        // fd_count
	Links []Link     // fd, fdinfo, ns, attr, map_files
	Mem   []MemChunk // mem
}

// ProcResult is the answer for one process.
type ProcResult struct {
	PID int
	// Start is the process's start time (stat field 22): with PID it
	// names the process answered.
	Start uint64
	// ID identifies the process for as long as the system runs (its
	// pidfs inode, procfs.Pin.ID; 0 before Linux 6.9): a process that
	// took the pid within the same clock tick has another. Binary
	// records carry it; the JSON format does not.
	ID   uint64
	Comm string
	UID  uint32
	// OwnerUID and OwnerGID own the process's /proc directory as the
	// kernel reports it (fs/proc/base.c task_dump_owner: its effective
	// ids when it is dumpable, else its mm's user namespace's root), as
	// stat'ed through the pin. Binary records carry them; the JSON
	// format does not.
	OwnerUID, OwnerGID uint32
	// Threads lists the process's threads when the request asked
	// (Request.Threads), as the caller names them. Binary records carry
	// them; the JSON format does not.
	Threads []int
	// Denial is set when the process as a whole is not answered (it does
	// not exist or exited during the request).
	Denial *Denial
	Items  []ItemResult
}

// AppendJSON appends the result as one JSON object (the wire format of
// docs/api.md).
func (r *ProcResult) AppendJSON(b []byte) []byte {
	b = append(b, `{"pid":`...)
	b = strconv.AppendInt(b, int64(r.PID), 10)
	if r.Denial != nil {
		b = append(b, `,"error":`...)
		b = appendDenial(b, r.Denial)
		return append(b, '}')
	}
	b = append(b, `,"start":`...)
	b = strconv.AppendUint(b, r.Start, 10)
	b = append(b, `,"comm":`...)
	b = AppendString(b, r.Comm)
	b = append(b, `,"uid":`...)
	b = strconv.AppendUint(b, uint64(r.UID), 10)
	b = append(b, `,"items":{`...)
	for i := range r.Items {
		if i > 0 {
			b = append(b, ',')
		}
		b = r.Items[i].appendJSON(b)
	}
	return append(b, "}}"...)
}

func appendDenial(b []byte, d *Denial) []byte {
	b = append(b, `{"errno":`...)
	b = AppendString(b, errnoName(d.Errno))
	b = append(b, `,"code":`...)
	b = strconv.AppendInt(b, int64(d.Errno), 10)
	b = append(b, `,"reason":`...)
	b = AppendString(b, d.Reason)
	return append(b, '}')
}

func (ir *ItemResult) appendJSON(b []byte) []byte {
	b = AppendString(b, ir.Item.String())
	b = append(b, ':', '{')
	if ir.Denial != nil {
		b = append(b, `"error":`...)
		b = appendDenial(b, ir.Denial)
		return append(b, '}')
	}
	b = append(b, `"value":`...)
	switch ir.kind {
	case valueText:
		b = AppendString(b, ir.Text)
	case valueList:
		b = append(b, '[')
		for i, s := range ir.List {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendString(b, s)
		}
		b = append(b, ']')
	case valueCount:
		b = strconv.AppendInt(b, int64(ir.Count), 10)
	case valueLinks:
		b = append(b, '{')
		for i, l := range ir.Links {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendString(b, l.Name)
			b = append(b, ':')
			b = AppendString(b, l.Target)
		}
		b = append(b, '}')
	case valueMem:
		b = append(b, '[')
		for i, c := range ir.Mem {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"addr":`...)
			b = strconv.AppendUint(b, c.Addr, 10)
			b = append(b, `,"data":"`...)
			b = base64.StdEncoding.AppendEncode(b, c.Data)
			b = append(b, `"}`...)
		}
		b = append(b, ']')
	case valueBool:
		b = append(b, "true"...)
	default:
		b = append(b, "null"...)
	}
	if ir.Masked {
		b = append(b, `,"masked":true`...)
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD;
// control characters and the HTML-sensitive <, >, & are escaped.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\t':
				b = append(b, '\\', 't')
			case '\r':
				b = append(b, '\\', 'r')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
