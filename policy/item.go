package policy

import (
	"fmt"
	"math/bits"
	"strings"

	"github.com/procgate/procgate/internal/suggest"
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
	// entry is the kernel.LookupEntry name the item reads ("" for the
	// attach operation, which is a system call, see syscall).
	entry   string
	syscall string // kernel.LookupSyscall name, for the attach operation
	doc     string
}

var itemInfos = [numItems]itemInfo{
	ItemStatus:      {name: "status", entry: "status", doc: "process status (names, ids, memory, signal masks)"},
	ItemStat:        {name: "stat", entry: "stat", doc: "stat with the [PT] fields (addresses, eip/esp, exit_code) zeroed, the view the kernel gives a reader that fails READ_FSCREDS|NOAUDIT"},
	ItemStatFull:    {name: "stat_full", entry: "stat", doc: "stat with the [PT] fields the kernel masks on a failed READ check"},
	ItemStatm:       {name: "statm", entry: "statm", doc: "memory usage in pages"},
	ItemIO:          {name: "io", entry: "io", doc: "I/O accounting"},
	ItemFd:          {name: "fd", entry: "fd/N", doc: "targets of the fd/N links"},
	ItemFdCount:     {name: "fd_count", entry: "fd", doc: "the number of open file descriptors only (st_size of fd/ since Linux 6.2, else a listing), never the targets"},
	ItemFdinfo:      {name: "fdinfo", entry: "fdinfo/N", doc: "fdinfo/N (position, flags, mount id)"},
	ItemCmdline:     {name: "cmdline", entry: "cmdline", doc: "command line"},
	ItemComm:        {name: "comm", entry: "comm", doc: "command name"},
	ItemEnviron:     {name: "environ", entry: "environ", doc: "initial environment (often holds secrets)"},
	ItemAuxv:        {name: "auxv", entry: "auxv", doc: "ELF auxiliary vector"},
	ItemMaps:        {name: "maps", entry: "maps", doc: "memory mappings (defeats ASLR)"},
	ItemSmaps:       {name: "smaps", entry: "smaps", doc: "per-mapping memory usage"},
	ItemSmapsRollup: {name: "smaps_rollup", entry: "smaps_rollup", doc: "summed memory usage"},
	ItemNumaMaps:    {name: "numa_maps", entry: "numa_maps", doc: "NUMA placement per mapping"},
	ItemPagemap:     {name: "pagemap", entry: "pagemap", doc: "page table entries"},
	ItemMapFiles:    {name: "map_files", entry: "map_files/RANGE", doc: "map_files/ listing and link targets"},
	ItemLimits:      {name: "limits", entry: "limits", doc: "resource limits"},
	ItemCgroup:      {name: "cgroup", entry: "cgroup", doc: "cgroup membership"},
	ItemNS:          {name: "ns", entry: "ns/NAME", doc: "namespace links"},
	ItemExe:         {name: "exe", entry: "exe", doc: "the executable link"},
	ItemCwd:         {name: "cwd", entry: "cwd", doc: "the working directory link"},
	ItemRoot:        {name: "root", entry: "root", doc: "the root directory link"},
	ItemSched:       {name: "sched", entry: "sched", doc: "scheduler statistics"},
	ItemSchedstat:   {name: "schedstat", entry: "schedstat", doc: "scheduler run/wait times"},
	ItemWchan:       {name: "wchan", entry: "wchan", doc: "the kernel function a sleeping task waits in"},
	ItemAttr:        {name: "attr", entry: "attr/NAME", doc: "LSM attributes (attr/current, …)"},
	ItemMountinfo:   {name: "mountinfo", entry: "mountinfo", doc: "the mount table seen by the process"},
	ItemOOMScore:    {name: "oom_score", entry: "oom_score", doc: "OOM killer badness"},

	ItemAttach:      {name: "attach", syscall: "ptrace_attach", doc: "ptrace attach/seize, process_vm_readv/writev, pidfd_getfd"},
	ItemMem:         {name: "mem", entry: "mem", doc: "read and write the address space"},
	ItemSyscall:     {name: "syscall", entry: "syscall", doc: "the system call being executed"},
	ItemStack:       {name: "stack", entry: "stack", doc: "the kernel stack"},
	ItemPersonality: {name: "personality", entry: "personality", doc: "the execution domain"},
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
// attach rule, never by a read rule. The classification follows the
// kernel's (PTRACE_MODE_ATTACH in the model's catalog).
func (it Item) Attach() bool { return it >= firstAttach && it < numItems }

// KernelEntry returns the name of the model's /proc/<pid>/ catalog entry
// the item reads (for kernel.LookupEntry), or "" for the attach operation.
// Policy-only items read an existing entry: fd_count reads "fd" (its
// st_size), stat_full reads "stat" (with the masked fields).
func (it Item) KernelEntry() string {
	if it < numItems {
		return itemInfos[it].entry
	}
	return ""
}

// KernelSyscall returns the model's syscall name for the attach operation
// (kernel.LookupSyscall), or "" for items that are /proc entries.
func (it Item) KernelSyscall() string {
	if it < numItems {
		return itemInfos[it].syscall
	}
	return ""
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
