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

// itemRead is how one item is read and checked.
type itemRead struct {
	kind readKind
	file string
	// waits marks reads that can wait on a lock the target holds — its
	// mmap lock (cmdline, environ, maps, smaps…, mem through
	// process_vm_readv) or its cred_guard_mutex (syscall, stack,
	// personality; lock_trace in fs/proc/base.c), or namespace_sem
	// (mountinfo; mount and unmount hold it for writing and can stall
	// with it) — for as long as the lock is held: they run under a
	// deadline.
	waits bool
	// list is the directory whose listing the kernel also checks.
	list string
}

var itemReads = map[Item]itemRead{
	policy.ItemStatus:      {kind: kindFile, file: "status"},
	policy.ItemStat:        {kind: kindStat, file: "stat"},
	policy.ItemStatFull:    {kind: kindStat, file: "stat"},
	policy.ItemStatm:       {kind: kindFile, file: "statm"},
	policy.ItemIO:          {kind: kindFile, file: "io"},
	policy.ItemFd:          {kind: kindFDs, list: "fd"},
	policy.ItemFdCount:     {kind: kindFDCount},
	policy.ItemFdinfo:      {kind: kindFDInfo, list: "fdinfo"},
	policy.ItemCmdline:     {kind: kindNULList, file: "cmdline", waits: true},
	policy.ItemComm:        {kind: kindFile, file: "comm"},
	policy.ItemEnviron:     {kind: kindNULList, file: "environ", waits: true},
	policy.ItemAuxv:        {kind: kindRefused},
	policy.ItemMaps:        {kind: kindFile, file: "maps", waits: true},
	policy.ItemSmaps:       {kind: kindFile, file: "smaps", waits: true},
	policy.ItemSmapsRollup: {kind: kindFile, file: "smaps_rollup", waits: true},
	policy.ItemNumaMaps:    {kind: kindFile, file: "numa_maps", waits: true},
	policy.ItemPagemap:     {kind: kindRefused},
	policy.ItemMapFiles:    {kind: kindMapFiles, list: "map_files", waits: true},
	policy.ItemLimits:      {kind: kindFile, file: "limits"},
	policy.ItemCgroup:      {kind: kindFile, file: "cgroup"},
	policy.ItemNS:          {kind: kindNS},
	policy.ItemExe:         {kind: kindLink, file: "exe"},
	policy.ItemCwd:         {kind: kindLink, file: "cwd"},
	policy.ItemRoot:        {kind: kindLink, file: "root"},
	policy.ItemSched:       {kind: kindFile, file: "sched"},
	policy.ItemSchedstat:   {kind: kindFile, file: "schedstat"},
	policy.ItemWchan:       {kind: kindFile, file: "wchan"},
	policy.ItemAttr:        {kind: kindAttr},
	policy.ItemMountinfo:   {kind: kindFile, file: "mountinfo", waits: true},
	policy.ItemOOMScore:    {kind: kindFile, file: "oom_score"},
	policy.ItemAttach:      {kind: kindDecision},
	policy.ItemMem:         {kind: kindMem, waits: true},
	policy.ItemSyscall:     {kind: kindFile, file: "syscall", waits: true},
	policy.ItemStack:       {kind: kindFile, file: "stack", waits: true},
	policy.ItemPersonality: {kind: kindFile, file: "personality", waits: true},
}

// itemCheck holds the model's catalog entries that decide an item.
type itemCheck struct {
	entry   *kernel.Entry   // the item's own entry (nil for attach)
	list    *kernel.Entry   // the directory whose listing must pass too
	syscall *kernel.Syscall // the attach operation
	read    itemRead
}

// checks is indexed by item; built once from the policy's vocabulary and
// the model's catalog.
var checks = func() []itemCheck {
	all := policy.Items()
	out := make([]itemCheck, len(all))
	for _, it := range all {
		rd, ok := itemReads[it]
		if !ok {
			rd = itemRead{kind: kindRefused}
		}
		c := itemCheck{read: rd}
		if n := it.KernelEntry(); n != "" {
			e, err := kernel.LookupEntry(n)
			if err != nil {
				panic(fmt.Sprintf("gate: item %s: %v", it, err)) // a bug in a table
			}
			c.entry = e
		}
		if rd.list != "" {
			e, err := kernel.LookupEntry(rd.list)
			if err != nil {
				panic(fmt.Sprintf("gate: item %s: %v", it, err))
			}
			c.list = e
		}
		if n := it.KernelSyscall(); n != "" {
			sc, err := kernel.LookupSyscall(n)
			if err != nil {
				panic(fmt.Sprintf("gate: item %s: %v", it, err))
			}
			c.syscall = sc
		}
		out[it] = c
	}
	return out
}()

// plain reports whether the kernel lets every caller read the item
// directly, whoever owns the target, on a procfs without hidepid: a
// world-readable file with no ptrace check (status, cmdline, limits…), or
// stat (whose [PT] fields are masked for a caller failing the READ check,
// which the gate then serves masked).
func (c *itemCheck) plain() bool {
	e := c.entry
	if e == nil || c.list != nil || c.read.kind == kindRefused {
		return false
	}
	if e.Name == "stat" && c.read.kind == kindStat {
		return true
	}
	return e.Check == kernel.CheckNone && e.Mode == 0 && !e.Dir && !e.Link && !e.Write && e.Perm&0o004 != 0
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
