package gate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
)

// The binary record format carries a [ProcResult] byte for byte: the
// values of /proc files are arbitrary bytes (auxv, pagemap, a cmdline
// that is not UTF-8), which the JSON wire format (AppendJSON) cannot
// carry unchanged. A front that serves files (the FUSE /proc) asks for
// it with Request.Binary; the privilege-separated reader sends the
// records as they are, and the front decodes them with [DecodeRecords].
//
// A record is [len u32][body], little-endian; the body is
//
//	[pid i32][flags u8]
//	flags&recDenied:   [denial]
//	otherwise:         [start u64][id u64][uid u32][owner uid u32][owner gid u32][comm str]
//	                   [nthreads u32][tid u32]…[nitems u16][item]…
//
// an item is [item u8][flags u8] then [denial] (itemDenied) or
// [kind u8][value]; a denial is [errno u16][reason str]; a str is
// [len u32][bytes]. Values: text: str; list: [n u32][str]…; count: u64;
// links: [n u32]([name str][target str])…; mem: [n u32]([addr u64][data str])…;
// bool and none: nothing.
const (
	recDenied  = 1
	itemDenied = 1
	itemMasked = 2
)

// maxRecord bounds one decoded record.
const maxRecord = 64 << 20

// AppendBinary appends the result as one binary record.
func (r *ProcResult) AppendBinary(b []byte) []byte {
	at := len(b)
	b = append(b, 0, 0, 0, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(int32(r.PID)))
	if r.Denial != nil {
		b = append(b, recDenied)
		b = appendBinDenial(b, r.Denial)
	} else {
		b = append(b, 0)
		b = binary.LittleEndian.AppendUint64(b, r.Start)
		b = binary.LittleEndian.AppendUint64(b, r.ID)
		b = binary.LittleEndian.AppendUint32(b, r.UID)
		b = binary.LittleEndian.AppendUint32(b, r.OwnerUID)
		b = binary.LittleEndian.AppendUint32(b, r.OwnerGID)
		b = appendBinString(b, r.Comm)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(r.Threads)))
		for _, tid := range r.Threads {
			b = binary.LittleEndian.AppendUint32(b, uint32(tid))
		}
		b = binary.LittleEndian.AppendUint16(b, uint16(len(r.Items)))
		for i := range r.Items {
			b = r.Items[i].appendBinary(b)
		}
	}
	binary.LittleEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	return b
}

func appendBinString(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendBinDenial(b []byte, d *Denial) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(d.Errno))
	return appendBinString(b, d.Reason)
}

func (ir *ItemResult) appendBinary(b []byte) []byte {
	b = append(b, byte(ir.Item))
	if ir.Denial != nil {
		b = append(b, itemDenied)
		return appendBinDenial(b, ir.Denial)
	}
	flags := byte(0)
	if ir.Masked {
		flags |= itemMasked
	}
	b = append(b, flags, byte(ir.kind))
	switch ir.kind {
	case valueText:
		b = appendBinString(b, ir.Text)
	case valueList:
		b = binary.LittleEndian.AppendUint32(b, uint32(len(ir.List)))
		for _, s := range ir.List {
			b = appendBinString(b, s)
		}
	case valueCount:
		b = binary.LittleEndian.AppendUint64(b, uint64(ir.Count))
	case valueLinks:
		b = binary.LittleEndian.AppendUint32(b, uint32(len(ir.Links)))
		for _, l := range ir.Links {
			b = appendBinString(b, l.Name)
			b = appendBinString(b, l.Target)
		}
	case valueMem:
		b = binary.LittleEndian.AppendUint32(b, uint32(len(ir.Mem)))
		for _, c := range ir.Mem {
			b = binary.LittleEndian.AppendUint64(b, c.Addr)
			b = appendBinString(b, string(c.Data))
		}
	}
	return b
}

// ErrBadRecord reports a binary record that does not decode.
var ErrBadRecord = errors.New("gate: malformed binary record")

// DecodeRecords decodes the binary records in b (complete records only,
// as Request.Binary answers arrive once the read is finished) and calls
// fn with each. The result and its strings are fresh: fn may keep them.
func DecodeRecords(b []byte, fn func(*ProcResult) error) error {
	for len(b) > 0 {
		if len(b) < 4 {
			return fmt.Errorf("%w: truncated length", ErrBadRecord)
		}
		n := binary.LittleEndian.Uint32(b)
		if n > maxRecord || uint64(n) > uint64(len(b)-4) {
			return fmt.Errorf("%w: length %d exceeds the %d bytes left", ErrBadRecord, n, len(b)-4)
		}
		d := decoder{b: b[4 : 4+n]}
		r := d.record()
		if d.err == nil && len(d.b) != 0 {
			d.fail("trailing bytes")
		}
		if d.err != nil {
			return d.err
		}
		if err := fn(&r); err != nil {
			return err
		}
		b = b[4+n:]
	}
	return nil
}

// decoder reads a record's fields, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrBadRecord, what)
	}
	d.b = nil
}

func (d *decoder) take(n int, what string) []byte {
	if d.err != nil || n < 0 || len(d.b) < n {
		d.fail(what)
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) u8(what string) byte {
	if p := d.take(1, what); p != nil {
		return p[0]
	}
	return 0
}

func (d *decoder) u16(what string) uint16 {
	if p := d.take(2, what); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (d *decoder) u32(what string) uint32 {
	if p := d.take(4, what); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (d *decoder) u64(what string) uint64 {
	if p := d.take(8, what); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (d *decoder) str(what string) string {
	n := d.u32(what)
	if uint64(n) > uint64(len(d.b)) {
		d.fail(what)
		return ""
	}
	return string(d.take(int(n), what))
}

// count reads an element count, refusing one that the bytes left could
// not hold (each element takes at least min bytes).
func (d *decoder) count(min int, what string) int {
	n := d.u32(what)
	if uint64(n)*uint64(min) > uint64(len(d.b)) {
		d.fail(what)
		return 0
	}
	return int(n)
}

func (d *decoder) denial() *Denial {
	e := d.u16("errno")
	reason := d.str("reason")
	if e == 0 {
		d.fail("denial without an errno")
	}
	return &Denial{Errno: syscall.Errno(e), Reason: reason}
}

func (d *decoder) record() ProcResult {
	r := ProcResult{PID: int(int32(d.u32("pid")))}
	switch d.u8("flags") {
	case 0:
	case recDenied:
		r.Denial = d.denial()
		return r
	default:
		d.fail("record flags")
		return r
	}
	r.Start = d.u64("start")
	r.ID = d.u64("id")
	r.UID = d.u32("uid")
	r.OwnerUID = d.u32("owner uid")
	r.OwnerGID = d.u32("owner gid")
	r.Comm = d.str("comm")
	if nt := d.count(4, "threads"); nt > 0 {
		r.Threads = make([]int, nt)
		for i := range r.Threads {
			r.Threads[i] = int(d.u32("thread"))
		}
	}
	n := int(d.u16("items"))
	if n > int(numItems) {
		d.fail("item count")
		return r
	}
	r.Items = make([]ItemResult, 0, n)
	for range n {
		if d.err != nil {
			break
		}
		r.Items = append(r.Items, d.item())
	}
	return r
}

func (d *decoder) item() ItemResult {
	ir := ItemResult{Item: Item(d.u8("item"))}
	if !ir.Item.Valid() {
		d.fail("item")
		return ir
	}
	flags := d.u8("item flags")
	switch {
	case flags == itemDenied:
		ir.Denial = d.denial()
		return ir
	case flags&^itemMasked != 0:
		d.fail("item flags")
		return ir
	}
	ir.Masked = flags&itemMasked != 0
	ir.kind = valueKind(d.u8("value kind"))
	switch ir.kind {
	case valueNone, valueBool:
	case valueText:
		ir.Text = d.str("text")
	case valueList:
		n := d.count(4, "list")
		ir.List = make([]string, 0, n)
		for range n {
			ir.List = append(ir.List, d.str("list element"))
		}
	case valueCount:
		ir.Count = int(d.u64("count"))
	case valueLinks:
		n := d.count(8, "links")
		ir.Links = make([]Link, 0, n)
		for range n {
			ir.Links = append(ir.Links, Link{Name: d.str("link name"), Target: d.str("link target")})
		}
	case valueMem:
		n := d.count(12, "mem")
		for range n {
			ir.Mem = append(ir.Mem, MemChunk{Addr: d.u64("mem addr"), Data: []byte(d.str("mem data"))})
		}
	default:
		d.fail("value kind")
	}
	return ir
}

// HasValue reports whether the item was answered with a value of the
// kind its file has (text, list, count, links, mem, or a bare grant).
func (ir *ItemResult) HasValue() bool { return ir.Denial == nil && ir.kind != valueNone }
