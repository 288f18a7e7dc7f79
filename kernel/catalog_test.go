package kernel_test

import (
	"strings"
	"testing"

	"github.com/procgate/procgate/kernel"
)

// TestCatalogIDs: every entry and syscall has its typed identity, the
// name lookup and the id agree, and a directory-held entry names its
// directory.
func TestCatalogIDs(t *testing.T) {
	entries := kernel.Entries()
	seen := map[kernel.EntryID]bool{}
	for _, e := range entries {
		if e.ID == kernel.EntryNone || seen[e.ID] {
			t.Errorf("%s: id %d missing or repeated", e.Name, e.ID)
		}
		seen[e.ID] = true
		if e.ID.Entry() != e || e.ID.String() != e.Name {
			t.Errorf("%s: id %d names %v", e.Name, e.ID, e.ID.Entry())
		}
		path := strings.NewReplacer("/N", "/3", "/NAME", "/user", "/RANGE", "/7f00-7f10").Replace(e.Name)
		if got, err := kernel.LookupEntry(path); err != nil || got != e {
			t.Errorf("LookupEntry(%q) = %v, %v; want %s", path, got, err, e.Name)
		}
		dir, _, nested := strings.Cut(e.Name, "/")
		switch {
		case nested && (e.Within.Entry() == nil || e.Within.Entry().Name != dir || !e.Within.Entry().Dir):
			t.Errorf("%s: within %v, want the directory %s", e.Name, e.Within, dir)
		case !nested && e.Within != kernel.EntryNone:
			t.Errorf("%s: within %v, want none", e.Name, e.Within)
		}
	}
	if kernel.EntryNone.Entry() != nil || kernel.EntryID(250).Entry() != nil || kernel.EntryID(250).String() != "entry(250)" {
		t.Error("ids outside the catalog name entries")
	}
	for _, sc := range kernel.Syscalls() {
		if sc.ID == kernel.SyscallNone || sc.ID.Syscall() != sc || sc.ID.String() != sc.Name {
			t.Errorf("%s: id %d names %v", sc.Name, sc.ID, sc.ID.Syscall())
		}
		if got, err := kernel.LookupSyscall(strings.ToUpper(sc.Name)); err != nil || got != sc {
			t.Errorf("LookupSyscall(%q) = %v, %v", sc.Name, got, err)
		}
	}
	if _, err := kernel.LookupSyscall("ptrace_poke"); err == nil || !strings.Contains(err.Error(), "ptrace_attach") {
		t.Errorf("LookupSyscall(ptrace_poke) = %v, want the known names", err)
	}
}

// TestCatalogClasses: the class of an entry or a call is the class of
// its mode.
func TestCatalogClasses(t *testing.T) {
	tests := []struct {
		name string
		got  kernel.Class
		want kernel.Class
	}{
		{"environ", kernel.EntryEnviron.Entry().Class(), kernel.ClassRead},
		{"mem", kernel.EntryMem.Entry().Class(), kernel.ClassAttach},
		{"syscall", kernel.EntrySyscall.Entry().Class(), kernel.ClassAttach},
		{"status", kernel.EntryStatus.Entry().Class(), kernel.ClassNone},
		{"fd", kernel.EntryFd.Entry().Class(), kernel.ClassNone},
		{"stat (noaudit)", kernel.EntryStat.Entry().Class(), kernel.ClassRead},
		{"ptrace_attach", kernel.SyscallPtraceAttach.Syscall().Class(), kernel.ClassAttach},
		{"ptrace_traceme", kernel.SyscallPtraceTraceme.Syscall().Class(), kernel.ClassNone},
		{"kcmp", kernel.SyscallKcmp.Syscall().Class(), kernel.ClassRead},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: class %s, want %s", tc.name, tc.got, tc.want)
		}
	}
}

// TestCatalogLocks holds the lock facts to the rules that take them:
// mm_access (every proc_mem_open entry) and lock_trace take the target's
// exec_update_lock, the mount table walks namespace_sem, and whatever
// reads the target's memory its mmap lock.
func TestCatalogLocks(t *testing.T) {
	for _, e := range kernel.Entries() {
		var want kernel.Lock
		switch e.Check {
		case kernel.CheckMM, kernel.CheckLockTrace, kernel.CheckStack, kernel.CheckAtRead:
			want |= kernel.LockExecUpdate
		case kernel.CheckMapFilesDir, kernel.CheckMapFilesLink, kernel.CheckMapFilesOpen:
			want |= kernel.LockMmap
		}
		switch e.ID {
		case kernel.EntryEnviron, kernel.EntryCmdline, kernel.EntryMem, kernel.EntryMaps, kernel.EntrySmaps,
			kernel.EntryNumaMaps, kernel.EntrySmapsRollup, kernel.EntryPagemap:
			want |= kernel.LockMmap
		case kernel.EntryMounts, kernel.EntryMountinfo, kernel.EntryMountstats:
			want |= kernel.LockNamespaceSem
		}
		if e.Locks != want {
			t.Errorf("%s: locks %04b, want %04b", e.Name, e.Locks, want)
		}
	}
	for _, sc := range []kernel.SyscallID{kernel.SyscallProcessVMReadv, kernel.SyscallProcessVMWritev} {
		if l := sc.Syscall().Locks; l != kernel.LockExecUpdate|kernel.LockMmap {
			t.Errorf("%s: locks %04b, want mm_access's and the mmap lock", sc, l)
		}
	}
	if l := kernel.SyscallPtraceAttach.Syscall().Locks; l != kernel.LockCredGuard {
		t.Errorf("ptrace_attach: locks %04b, want cred_guard_mutex", l)
	}
}
