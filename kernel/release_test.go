package kernel_test

import (
	"testing"

	"github.com/procgate/procgate/kernel"
)

func TestCompareDebianVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		sign int
	}{
		{"6.1.192-3", "6.1.172-1", 1},
		{"6.1.172-1", "6.1.172-1", 0},
		{"5.10.251-4", "5.10.251-5", -1},
		{"5.10.262-1", "5.10.251-5", 1},
		{"6.12.95-1~bpo12+1", "6.12.95-1", -1},
		{"6.12.95-1~bpo12+1", "6.12.88-1", 1},
		{"6.12.9-1", "6.12.10-1", -1},
		{"1:1.0-1", "2.0-1", 1},
		{"1.0", "1.0-0", 0},
		{"1.0a", "1.0", 1},
		{"1.0~rc1", "1.0", -1},
	} {
		got := kernel.CompareDebianVersions(tc.a, tc.b)
		if (got > 0) != (tc.sign > 0) || (got < 0) != (tc.sign < 0) {
			t.Errorf("CompareDebianVersions(%q, %q) = %d, want sign %d", tc.a, tc.b, got, tc.sign)
		}
		if back := kernel.CompareDebianVersions(tc.b, tc.a); (back > 0) != (tc.sign < 0) {
			t.Errorf("CompareDebianVersions(%q, %q) = %d: not antisymmetric", tc.b, tc.a, back)
		}
	}
}

// The Debian packages verify-vm boots: upstream rules plus the backport
// table (docs/kernels.md has the observations).
func TestFeaturesForPackage(t *testing.T) {
	for _, tc := range []struct {
		version                                          string
		userDumpable, esrch, fdinfo, pidfdESRCH, nsEmpty bool
		backports                                        int
	}{
		{"5.10.262-1", true, false, false, true, true, 1},
		{"5.10.251-4", false, false, false, false, false, 0},
		{"6.1.192-3", true, false, true, true, false, 1},
		{"6.1.180-1", true, false, true, true, true, 1},
		{"6.1.170-1", false, false, true, false, false, 0},
		{"6.12.95-1~bpo12+1", true, true, true, true, false, 1},
		{"6.12.118-1", true, true, true, true, false, 1},
		{"6.12.98-1", true, true, true, true, true, 1},
		{"6.12.57-1", false, false, true, true, false, 0},
	} {
		f, r, applied, err := kernel.FeaturesForPackage("debian", tc.version)
		if err != nil {
			t.Fatal(err)
		}
		if f.UserDumpable != tc.userDumpable || f.ProcMemESRCH != tc.esrch || f.FdinfoCheck != tc.fdinfo ||
			f.PidfdGetfdESRCH != tc.pidfdESRCH || f.NSLinkEmpty != tc.nsEmpty || len(applied) != tc.backports {
			t.Errorf("FeaturesForPackage(debian, %s) = %+v (release %s), %d backports", tc.version, f, r, len(applied))
		}
		if other, _, none, _ := kernel.FeaturesForPackage("fedora", tc.version); len(none) != 0 || other != kernel.FeaturesFor(r) {
			t.Errorf("another distribution got Debian's backports for %s", tc.version)
		}
	}
	for _, b := range kernel.Backports {
		var f kernel.Features
		if f.Field(b.Feature) == nil || b.Change == "" || b.Evidence == "" {
			t.Errorf("backport %+v: unknown feature or no change and evidence", b)
		}
	}
	var f kernel.Features
	for _, n := range kernel.FeatureNames {
		if f.Field(n) == nil {
			t.Errorf("FeatureNames has %q, which Field does not know", n)
		}
	}
}
