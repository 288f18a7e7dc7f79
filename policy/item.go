package policy

import (
	"fmt"
	"math/bits"
	"strings"

	"github.com/procgate/procgate/internal/suggest"
	"github.com/procgate/procgate/kernel"
)

// Item is one thing a policy grants: a /proc/<pid>/ entry (or a finer
// view of one) or the attach operation itself. The vocabulary is closed;
// items are small integers usable as bit positions in an [ItemSet].
type Item uint8

// The item vocabulary. Read-class items come first, then attach-class.
const (
	ItemStatus      Item = iota // status (no kernel ptrace check)
	ItemStat                    // stat with the [PT] fields masked, as an unprivileged reader sees it
	ItemStatFull                // stat including the [PT] fields the kernel masks
	ItemStatm                   // statm
	ItemIO                      // io
	ItemFd                      // fd/N link targets
	ItemFdCount                 // the number of open fds (st_size of fd/), never the targets
	ItemFdinfo                  // fdinfo/N
	ItemCmdline                 // cmdline
	ItemComm                    // comm
	ItemEnviron                 // environ
	ItemAuxv                    // auxv
	ItemMaps                    // maps
	ItemSmaps                   // smaps
	ItemSmapsRollup             // smaps_rollup
	ItemNumaMaps                // numa_maps
	ItemPagemap                 // pagemap
	ItemMapFiles                // map_files/ listing and links
	ItemLimits                  // limits
	ItemCgroup                  // cgroup
	ItemNS                      // ns/NAME links
	ItemExe                     // exe link
	ItemCwd                     // cwd link
	ItemRoot                    // root link
	ItemSched                   // sched
	ItemSchedstat               // schedstat
	ItemWchan                   // wchan
	ItemAttr                    // attr/NAME (LSM attributes)
	ItemMountinfo               // mountinfo
	ItemOOMScore                // oom_score

	ItemAttach      // ptrace attach/seize, process_vm_readv/writev, pidfd_getfd
	ItemMem         // mem
	ItemSyscall     // syscall
	ItemStack       // stack
	ItemPersonality // personality

	numItems
)

// firstAttach is the first attach-class item.
const firstAttach = ItemAttach

// itemInfo ties an item to the model's catalog.
type itemInfo struct {
	name string
	// entry is the /proc/<pid>/ catalog entry the item reads (none for
	// the attach operation, which is a system call, see syscall).
	entry   kernel.EntryID
	syscall kernel.SyscallID // the attach operation's system call
	doc     string
}

var itemInfos = [numItems]itemInfo{
	ItemStatus:      {name: "status", entry: kernel.EntryStatus, doc: "process status (names, ids, memory, signal masks)"},
	ItemStat:        {name: "stat", entry: kernel.EntryStat, doc: "stat with the [PT] fields (addresses, eip/esp, exit_code) zeroed, the view the kernel gives a reader that fails READ_FSCREDS|NOAUDIT"},
	ItemStatFull:    {name: "stat_full", entry: kernel.EntryStat, doc: "stat with the [PT] fields the kernel masks on a failed READ check"},
	ItemStatm:       {name: "statm", entry: kernel.EntryStatm, doc: "memory usage in pages"},
	ItemIO:          {name: "io", entry: kernel.EntryIO, doc: "I/O accounting"},
	ItemFd:          {name: "fd", entry: kernel.EntryFdN, doc: "targets of the fd/N links"},
	ItemFdCount:     {name: "fd_count", entry: kernel.EntryFd, doc: "the number of open file descriptors only (st_size of fd/ since Linux 6.2, else a listing), never the targets"},
	ItemFdinfo:      {name: "fdinfo", entry: kernel.EntryFdinfoN, doc: "fdinfo/N (position, flags, mount id)"},
	ItemCmdline:     {name: "cmdline", entry: kernel.EntryCmdline, doc: "command line"},
	ItemComm:        {name: "comm", entry: kernel.EntryComm, doc: "command name"},
	ItemEnviron:     {name: "environ", entry: kernel.EntryEnviron, doc: "initial environment (often holds secrets)"},
	ItemAuxv:        {name: "auxv", entry: kernel.EntryAuxv, doc: "ELF auxiliary vector"},
	ItemMaps:        {name: "maps", entry: kernel.EntryMaps, doc: "memory mappings (defeats ASLR)"},
	ItemSmaps:       {name: "smaps", entry: kernel.EntrySmaps, doc: "per-mapping memory usage"},
	ItemSmapsRollup: {name: "smaps_rollup", entry: kernel.EntrySmapsRollup, doc: "summed memory usage"},
	ItemNumaMaps:    {name: "numa_maps", entry: kernel.EntryNumaMaps, doc: "NUMA placement per mapping"},
	ItemPagemap:     {name: "pagemap", entry: kernel.EntryPagemap, doc: "page table entries"},
	ItemMapFiles:    {name: "map_files", entry: kernel.EntryMapFilesRange, doc: "map_files/ listing and link targets"},
	ItemLimits:      {name: "limits", entry: kernel.EntryLimits, doc: "resource limits"},
	ItemCgroup:      {name: "cgroup", entry: kernel.EntryCgroup, doc: "cgroup membership"},
	ItemNS:          {name: "ns", entry: kernel.EntryNSName, doc: "namespace links"},
	ItemExe:         {name: "exe", entry: kernel.EntryExe, doc: "the executable link"},
	ItemCwd:         {name: "cwd", entry: kernel.EntryCwd, doc: "the working directory link"},
	ItemRoot:        {name: "root", entry: kernel.EntryRoot, doc: "the root directory link"},
	ItemSched:       {name: "sched", entry: kernel.EntrySched, doc: "scheduler statistics"},
	ItemSchedstat:   {name: "schedstat", entry: kernel.EntrySchedstat, doc: "scheduler run/wait times"},
	ItemWchan:       {name: "wchan", entry: kernel.EntryWchan, doc: "the kernel function a sleeping task waits in"},
	ItemAttr:        {name: "attr", entry: kernel.EntryAttrName, doc: "LSM attributes (attr/current, …)"},
	ItemMountinfo:   {name: "mountinfo", entry: kernel.EntryMountinfo, doc: "the mount table seen by the process"},
	ItemOOMScore:    {name: "oom_score", entry: kernel.EntryOOMScore, doc: "OOM killer badness"},

	ItemAttach:      {name: "attach", syscall: kernel.SyscallPtraceAttach, doc: "ptrace attach/seize, process_vm_readv/writev, pidfd_getfd"},
	ItemMem:         {name: "mem", entry: kernel.EntryMem, doc: "read and write the address space"},
	ItemSyscall:     {name: "syscall", entry: kernel.EntrySyscall, doc: "the system call being executed"},
	ItemStack:       {name: "stack", entry: kernel.EntryStack, doc: "the kernel stack"},
	ItemPersonality: {name: "personality", entry: kernel.EntryPersonality, doc: "the execution domain"},
}

var itemByName = func() map[string]Item {
	m := make(map[string]Item, numItems)
	for i := range numItems {
		m[itemInfos[i].name] = i
	}
	return m
}()

// Items returns every item in the vocabulary, read-class first.
func Items() []Item {
	out := make([]Item, numItems)
	for i := range numItems {
		out[i] = i
	}
	return out
}

// ItemNames returns the names of every item, in [Items] order.
func ItemNames() []string {
	out := make([]string, numItems)
	for i := range numItems {
		out[i] = itemInfos[i].name
	}
	return out
}

// ParseItem returns the item with the given name. An unknown name is an
// error that suggests the nearest known one.
func ParseItem(name string) (Item, error) {
	if it, ok := itemByName[name]; ok {
		return it, nil
	}
	return 0, fmt.Errorf("unknown item %q%s", name, suggest.DidYouMean(name, ItemNames(), 3))
}

// String returns the item's name in the policy language, or "item(N)" for
// a value outside the vocabulary.
func (it Item) String() string {
	if it < numItems {
		return itemInfos[it].name
	}
	return fmt.Sprintf("item(%d)", uint8(it))
}

// Valid reports whether it is in the vocabulary.
func (it Item) Valid() bool { return it < numItems }

// Attach reports whether it is attach-class: it is granted only by an
// attach rule, never by a read rule. The classification is the kernel's
// ([Item.KernelClass] is [kernel.ClassAttach]).
func (it Item) Attach() bool { return it >= firstAttach && it < numItems }

// KernelEntry returns the model's /proc/<pid>/ catalog entry the item
// reads, or nil for the attach operation. Policy-only items read an
// existing entry: fd_count reads fd/ (its st_size), stat_full reads stat
// (with the masked fields).
func (it Item) KernelEntry() *kernel.Entry {
	if it < numItems {
		return itemInfos[it].entry.Entry()
	}
	return nil
}

// KernelSyscall returns the model's system call for the attach
// operation, or nil for items that are /proc entries.
func (it Item) KernelSyscall() *kernel.Syscall {
	if it < numItems {
		return itemInfos[it].syscall.Syscall()
	}
	return nil
}

// KernelClass returns the class of the ptrace check the kernel makes for
// the item's entry or system call. An item is attach-class ([Item.Attach])
// exactly when this is [kernel.ClassAttach]; TestItemsMapOntoKernelCatalog
// holds the vocabulary's order to it.
func (it Item) KernelClass() kernel.Class {
	if e := it.KernelEntry(); e != nil {
		return e.Class()
	}
	if sc := it.KernelSyscall(); sc != nil {
		return sc.Class()
	}
	return kernel.ClassNone
}

// Doc returns a one-line description of the item.
func (it Item) Doc() string {
	if it < numItems {
		return itemInfos[it].doc
	}
	return ""
}

// ItemSet is a set of items, one bit per [Item].
type ItemSet uint64

// The item sets of each class.
const (
	ReadItems   ItemSet = 1<<firstAttach - 1
	AttachItems ItemSet = (1<<numItems - 1) &^ ReadItems
	AllItems    ItemSet = ReadItems | AttachItems
)

// Set returns the set holding only it.
func (it Item) Set() ItemSet {
	if it >= numItems {
		return 0
	}
	return 1 << it
}

// Has reports whether it is in s.
func (s ItemSet) Has(it Item) bool { return it < numItems && s&(1<<it) != 0 }

// Len returns the number of items in s.
func (s ItemSet) Len() int { return bits.OnesCount64(uint64(s)) }

// Items returns the members of s in vocabulary order.
func (s ItemSet) Items() []Item {
	var out []Item
	for v := uint64(s & AllItems); v != 0; v &= v - 1 {
		out = append(out, Item(bits.TrailingZeros64(v)))
	}
	return out
}

// String returns the set in policy syntax: "{ status io }", "{ }" when
// empty.
func (s ItemSet) String() string {
	var b strings.Builder
	b.WriteString("{")
	for _, it := range s.Items() {
		b.WriteByte(' ')
		b.WriteString(it.String())
	}
	b.WriteString(" }")
	return b.String()
}
