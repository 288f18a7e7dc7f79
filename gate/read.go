package gate

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procgate/procgate/policy"
	"github.com/procgate/procgate/procfs"
)

// maxMem bounds the bytes one request reads through the mem item.
const maxMem = 1 << 20

// readItem reads one granted item of the pinned target into ir, for
// caller c.
func (g *Gate) readItem(c *Caller, t *target, it Item, masked bool, mem []MemRange, ir *ItemResult, bp *[]byte) error {
	ck := &checks[it]
	if ck.waits {
		// The read fills its own copy, taken over only when it finishes
		// in time: a read that outlives its deadline must not write into
		// a result that is already being answered.
		res := new(ItemResult)
		*res = *ir
		err := g.withDeadline(c, t, it, func(dir int) error { return g.readKind(dir, t, ck, it, masked, mem, res, nil) })
		if err == nil {
			*ir = *res
		}
		return err
	}
	return g.readKind(t.dir(), t, ck, it, masked, mem, ir, bp)
}

// readKind reads item it, checked by ck, through the directory dir.
func (g *Gate) readKind(dir int, t *target, ck *itemCheck, it Item, masked bool, mem []MemRange, ir *ItemResult, bp *[]byte) error {
	var buf []byte
	if bp != nil {
		buf = *bp
	} else {
		buf = make([]byte, 0, 4096)
	}
	max := g.cfg.MaxValue
	// What was read under the pin answers for the process itself; a
	// thread's files are read in its own directory.
	proc := t.task == 0
	switch ck.read.kind {
	case kindFile:
		// status was read already, under the same pin.
		if it == policy.ItemStatus {
			ir.kind, ir.Text = valueText, t.status()
			return nil
		}
		if proc && it == policy.ItemCgroup && t.info.cgroupOK && len(t.info.cgroupRaw) <= max {
			ir.kind, ir.Text = valueText, t.info.cgroupRaw
			return nil
		}
		b, err := procfs.ReadFile(dir, ck.file, buf, max)
		if err != nil {
			return fmt.Errorf("read %s: %w", ck.file, procfs.Gone(err))
		}
		ir.kind, ir.Text = valueText, string(b)
	case kindStat:
		ir.kind, ir.Text = valueText, t.info.statRaw
		if !proc {
			b, err := procfs.ReadFile(dir, "stat", buf, max)
			if err != nil {
				return fmt.Errorf("read stat: %w", procfs.Gone(err))
			}
			ir.Text = string(b)
		}
		if masked && it == policy.ItemStat {
			ir.Text = string(MaskStat([]byte(ir.Text)))
		}
	case kindNULList:
		b, err := procfs.ReadFile(dir, ck.file, buf, max)
		if err != nil {
			return fmt.Errorf("read %s: %w", ck.file, procfs.Gone(err))
		}
		b = bytes.TrimSuffix(b, []byte{0})
		ir.kind = valueList
		if len(b) > 0 {
			ir.List = strings.Split(string(b), "\x00")
		} else {
			ir.List = []string{}
		}
	case kindLink:
		if it == policy.ItemExe && t.info.exeOK {
			// read under the same pin
			ir.kind, ir.Text = valueText, t.info.exeLink
			return nil
		}
		l, err := procfs.ReadLink(dir, ck.file)
		if err != nil {
			return fmt.Errorf("readlink %s: %w", ck.file, procfs.Gone(err))
		}
		ir.kind, ir.Text = valueText, l
	case kindFDCount:
		if proc && t.info.fdOK {
			// stat'ed under the same pin
			ir.kind, ir.Count = valueCount, int(t.info.fdSize)
			return nil
		}
		var sb unix.Stat_t
		if err := unix.Fstatat(dir, ck.file, &sb, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("stat %s: %w", ck.file, procfs.Gone(err))
		}
		ir.kind, ir.Count = valueCount, int(sb.Size)
	case kindFDs, kindNS, kindMapFiles:
		names, err := listDir(dir, ck.file)
		if err != nil {
			return err
		}
		ir.kind, ir.Links = valueLinks, make([]Link, 0, len(names))
		for _, n := range names {
			l, err := procfs.ReadLink(dir, ck.file+"/"+n)
			if err != nil {
				continue // closed meanwhile
			}
			ir.Links = append(ir.Links, Link{n, l})
		}
	case kindFDInfo:
		names, err := listDir(dir, ck.file)
		if err != nil {
			return err
		}
		ir.kind, ir.Links = valueLinks, make([]Link, 0, len(names))
		total := 0
		for _, n := range names {
			b, err := procfs.ReadFile(dir, ck.file+"/"+n, buf, max)
			if err != nil {
				continue
			}
			if total += len(b); total > max {
				break
			}
			ir.Links = append(ir.Links, Link{n, string(b)})
		}
	case kindAttr:
		ir.kind = valueLinks
		for _, n := range []string{"current", "apparmor/current", "smack/current"} {
			b, err := procfs.ReadFile(dir, ck.file+"/"+n, buf, 4096)
			if err != nil || len(b) == 0 {
				continue
			}
			ir.Links = append(ir.Links, Link{n, strings.TrimRight(string(b), "\n\x00")})
		}
	case kindMem:
		return readMem(t.pin, mem, ir)
	case kindDecision:
		ir.kind = valueBool
	default:
		return fmt.Errorf("%s is not served: %w", it, unix.ENOTSUP)
	}
	return nil
}

// listDir lists the numeric or named entries of a directory under dir.
func listDir(dir int, sub string) ([]string, error) {
	names, err := procfs.ReadDirNames(dir, sub)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", sub, err)
	}
	sortNames(names)
	return names, nil
}

// sortNames sorts numerically where names are numbers.
func sortNames(names []string) {
	key := func(s string) (int, bool) { n, err := strconv.Atoi(s); return n, err == nil }
	for i := 1; i < len(names); i++ {
		for j := i; j > 0; j-- {
			a, aok := key(names[j-1])
			b, bok := key(names[j])
			less := names[j] < names[j-1]
			if aok && bok {
				less = b < a
			}
			if !less {
				break
			}
			names[j-1], names[j] = names[j], names[j-1]
		}
	}
}

// readMem reads the requested ranges with process_vm_readv. The pid is
// the pinned one; the pin's verification after the read proves the
// ranges were read from the process decided on.
func readMem(p *procfs.Pin, ranges []MemRange, ir *ItemResult) error {
	if len(ranges) == 0 {
		return fmt.Errorf("mem: no ranges requested: %w", unix.EINVAL)
	}
	total := uint64(0)
	ir.kind = valueMem
	for _, r := range ranges {
		if r.Len == 0 || r.Len > maxMem || total+r.Len > maxMem {
			return fmt.Errorf("mem: ranges exceed %d bytes: %w", maxMem, unix.E2BIG)
		}
		total += r.Len
		data := make([]byte, r.Len)
		local := []unix.Iovec{{Base: &data[0]}}
		local[0].SetLen(len(data))
		remote := []unix.RemoteIovec{{Base: uintptr(r.Addr), Len: int(r.Len)}}
		n, err := unix.ProcessVMReadv(p.PID, local, remote, 0)
		if err != nil {
			return fmt.Errorf("process_vm_readv: %w", err)
		}
		ir.Mem = append(ir.Mem, MemChunk{Addr: r.Addr, Data: data[:n]})
	}
	return nil
}

// withDeadline runs read, for caller c, on a duplicate of the directory
// of target t in its own goroutine and gives up after the read timeout: a
// file that takes a lock of the target's can block for as long as the
// lock is held. The goroutine left behind owns its duplicate descriptor
// and closes it when the kernel returns. Before it starts, the read must
// pass the target's breaker and the limits on reads in flight (see
// StallLimits), then find one of the MaxStuckReads slots free; one that
// does not is refused at once.
func (g *Gate) withDeadline(c *Caller, t *target, it Item, read func(dir int) error) error {
	f, why, err := g.stall.admit(stallKey{t.pin.PID, t.info.start}, c.subj.UID, it)
	if err != nil {
		g.metrics.readRefusals[why].Add(1)
		return err
	}
	select {
	case g.stuck <- struct{}{}:
	default:
		g.stall.cancel(f)
		g.metrics.readRefusals[refusedGlobal].Add(1)
		return fmt.Errorf("read %s: too many reads blocked on locks of their targets: %w", it, unix.EBUSY)
	}
	dup, err := unix.FcntlInt(uintptr(t.dir()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		<-g.stuck
		g.stall.cancel(f)
		return fmt.Errorf("read %s: %w", it, err)
	}
	done := make(chan error, 1)
	go func() {
		err := read(dup)
		unix.Close(dup)
		// Everything the read held is given back before its answer is:
		// a caller that reads the same target again at once finds it free.
		<-g.stuck
		g.stall.done(f)
		done <- err
	}()
	timer := time.NewTimer(g.cfg.ReadTimeout)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		if !g.stall.expire(f) {
			return <-done // it returned meanwhile
		}
		g.metrics.readTimeouts.Add(1)
		return fmt.Errorf("read %s: no answer within %v (a lock of the target's is held): %w", it, g.cfg.ReadTimeout, unix.ETIMEDOUT)
	}
}

// MaskStat returns a copy of a stat line with the fields the kernel
// zeroes for a reader that fails the READ check (fs/proc/array.c
// do_task_stat: the [PT] fields): start_code and end_code print 1 (0
// without an mm), start_stack, kstkesp, kstkeip, wchan, the data, brk,
// argument and environment addresses and exit_code print 0.
func MaskStat(b []byte) []byte {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return b
	}
	out := append(make([]byte, 0, len(b)), b[:i+1]...)
	return procfs.MapStatFields(out, b[i+1:], func(n int, f []byte) []byte {
		switch {
		case n == 26 || n == 27:
			if string(f) != "0" {
				return []byte("1")
			}
		case n == 28 || n == 29 || n == 30 || n == 35 || (n >= 45 && n <= 52):
			return []byte("0")
		}
		return f
	})
}
