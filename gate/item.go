package gate

import (
	"fmt"

	"github.com/procgate/procgate/kernel"
	"github.com/procgate/procgate/policy"
)

// Item is the policy language's item (policy.Item): the gate reads the
// same vocabulary the policy grants.
type Item = policy.Item

// readKind says how the gate reads an item.
type readKind uint8

const (
	kindFile     readKind = iota // a text file under /proc/<pid>/
	kindNULList                  // a NUL-separated file (cmdline, environ)
	kindStat                     // stat, masked unless unmasked is granted
	kindLink                     // one link (exe, cwd, root)
	kindFDs                      // fd/ listing with link targets
	kindFDCount                  // st_size of fd/
	kindFDInfo                   // fdinfo/N of every fd
	kindNS                       // ns/ links
	kindAttr                     // attr/current and module subdirectories
	kindMapFiles                 // map_files/ listing with link targets
	kindMem                      // process_vm_readv of requested ranges
	kindDecision                 // attach: answered as a decision only
	kindRefused                  // never served (binary, unbounded)
)

// itemRead is how the gate reads one item. What it opens, and what the
// kernel checks, come from the item's catalog entry (policy.Item.KernelEntry).
type itemRead struct {
	kind readKind
	// listed marks items read by listing the directory their entry lives
	// in (fd/, fdinfo/, map_files/): the kernel checks that listing too.
	listed bool
	// via is the system call the read makes instead of opening the
	// entry (process_vm_readv for mem).
	via kernel.SyscallID
}

var itemReads = map[Item]itemRead{
	policy.ItemStatus:      {kind: kindFile},
	policy.ItemStat:        {kind: kindStat},
	policy.ItemStatFull:    {kind: kindStat},
	policy.ItemStatm:       {kind: kindFile},
	policy.ItemIO:          {kind: kindFile},
	policy.ItemFd:          {kind: kindFDs, listed: true},
	policy.ItemFdCount:     {kind: kindFDCount},
	policy.ItemFdinfo:      {kind: kindFDInfo, listed: true},
	policy.ItemCmdline:     {kind: kindNULList},
	policy.ItemComm:        {kind: kindFile},
	policy.ItemEnviron:     {kind: kindNULList},
	policy.ItemAuxv:        {kind: kindRefused},
	policy.ItemMaps:        {kind: kindFile},
	policy.ItemSmaps:       {kind: kindFile},
	policy.ItemSmapsRollup: {kind: kindFile},
	policy.ItemNumaMaps:    {kind: kindFile},
	policy.ItemPagemap:     {kind: kindRefused},
	policy.ItemMapFiles:    {kind: kindMapFiles, listed: true},
	policy.ItemLimits:      {kind: kindFile},
	policy.ItemCgroup:      {kind: kindFile},
	policy.ItemNS:          {kind: kindNS},
	policy.ItemExe:         {kind: kindLink},
	policy.ItemCwd:         {kind: kindLink},
	policy.ItemRoot:        {kind: kindLink},
	policy.ItemSched:       {kind: kindFile},
	policy.ItemSchedstat:   {kind: kindFile},
	policy.ItemWchan:       {kind: kindFile},
	policy.ItemAttr:        {kind: kindAttr},
	policy.ItemMountinfo:   {kind: kindFile},
	policy.ItemOOMScore:    {kind: kindFile},
	policy.ItemAttach:      {kind: kindDecision},
	policy.ItemMem:         {kind: kindMem, via: kernel.SyscallProcessVMReadv},
	policy.ItemSyscall:     {kind: kindFile},
	policy.ItemStack:       {kind: kindFile},
	policy.ItemPersonality: {kind: kindFile},
}

// itemCheck is one item: the model's catalog entries that decide it and
// how it is read.
type itemCheck struct {
	entry   *kernel.Entry   // the item's own entry (nil for attach)
	list    *kernel.Entry   // the directory whose listing must pass too
	syscall *kernel.Syscall // the attach operation
	read    itemRead
	// file is what the read opens under /proc/<pid>: the entry's file or
	// link, or the directory it lives in for the listing kinds.
	file string
	// waits marks reads that take a lock of the target's (its mmap lock,
	// exec_update_lock, or namespace_sem; see kernel.Lock) and so can
	// wait for as long as it is held: they run under a deadline.
	waits bool
	// plain reports whether the kernel lets every caller read the item
	// directly, whoever owns the target, on a procfs without hidepid: a
	// world-readable file with no ptrace check (status, cmdline,
	// limits…), or stat (whose [PT] fields are masked for a caller
	// failing the READ check, which the gate then serves masked). Not
	// stat_full: its [PT] fields are what the kernel hides from a caller
	// failing that check.
	plain bool
}

// checks is indexed by item; built once from the policy's vocabulary and
// the model's catalog. An item without a way to read it, or whose
// catalog entry does not fit its kind, is refused (ENOTSUP), never read.
var checks = func() []itemCheck {
	all := policy.Items()
	out := make([]itemCheck, len(all))
	for _, it := range all {
		out[it] = newItemCheck(it, itemReads[it])
	}
	return out
}()

func newItemCheck(it Item, rd itemRead) itemCheck {
	c := itemCheck{entry: it.KernelEntry(), syscall: it.KernelSyscall(), read: rd}
	refuse := func() itemCheck {
		return itemCheck{entry: c.entry, syscall: c.syscall, read: itemRead{kind: kindRefused}}
	}
	switch rd.kind {
	case kindRefused:
		return c
	case kindDecision:
		if c.syscall == nil {
			return refuse()
		}
		return c
	}
	if c.entry == nil {
		return refuse()
	}
	c.file = c.entry.Name
	locks := c.entry.Locks
	switch rd.kind {
	case kindFDs, kindFDInfo, kindMapFiles, kindNS, kindAttr:
		dir := c.entry.Within.Entry()
		if dir == nil {
			return refuse()
		}
		c.file = dir.Name
		if rd.listed {
			c.list = dir
			locks |= dir.Locks
		}
	case kindFDCount:
		if !c.entry.Dir {
			return refuse()
		}
	case kindMem:
		sc := rd.via.Syscall()
		if sc == nil {
			return refuse()
		}
		locks = sc.Locks
	}
	c.waits = locks != 0
	e := c.entry
	c.plain = c.list == nil && (it == policy.ItemStat ||
		rd.kind != kindStat && e.Check == kernel.CheckNone && e.Mode == 0 && !e.Dir && !e.Link && !e.Write && e.Perm&0o004 != 0)
	return c
}

// ParseItem returns the item with the given name.
func ParseItem(s string) (Item, error) {
	it, err := policy.ParseItem(s)
	if err != nil {
		return 0, fmt.Errorf("gate: %w", err)
	}
	return it, nil
}

// numItems is the size of the vocabulary.
var numItems = len(policy.Items())
