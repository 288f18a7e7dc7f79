package selinux

import "testing"

// TestPermissionBits holds the hooks' permission constants to the class
// tables.
func TestPermissionBits(t *testing.T) {
	for _, tc := range []struct {
		c    class
		name string
		bit  uint32
	}{
		{classFile, "read", fileRead},
		{classFile, "write", fileWrite},
		{classFile, "getattr", fileGetattr},
		{classDir, "read", fileRead},
		{classDir, "getattr", fileGetattr},
		{classDir, "search", dirSearch},
		{classLnkFile, "read", fileRead},
		{classProcess, "ptrace", processPtrace},
	} {
		if got, ok := tc.c.perm(tc.name); !ok || got != tc.bit {
			t.Errorf("%s %s: bit %#x, want %#x", tc.c, tc.name, got, tc.bit)
		}
	}
}
